"""The platform a run trains on: speed settings (precision, memory format, compile, CUDA graphs) and data-parallel runs."""
