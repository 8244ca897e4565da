"""depthcloud.serve"""
