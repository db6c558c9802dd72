"""The ``rnncompress`` command line: thin wrappers over models, compressor, exporters, runtime."""
