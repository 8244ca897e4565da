"""File formats: one module per format (clouds, depth images, calibration files)."""
