"""Scalers: turn forecast demand into replica counts; and the GPU budget."""
