"""depthcloud.sources"""
