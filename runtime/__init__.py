"""onnxruntime side: latency measurement, accuracy in ORT, reports, plots, budget checks."""
