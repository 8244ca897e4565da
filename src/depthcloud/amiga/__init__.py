"""depthcloud.amiga"""
