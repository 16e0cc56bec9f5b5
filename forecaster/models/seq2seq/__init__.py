"""The seq2seq LSTM: the cell (`lstm`), the graph per mode (`graph`), the network with its
Session (`network`), the inference-only export (`export`) and the forecaster (`forecaster`).

Importing this package does not import TensorFlow (`spec` and `state` are plain Python, and the
config schema uses them); its modules that build graphs do.
"""
