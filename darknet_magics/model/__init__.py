"""The model stage: what a trained model does on images (detections) and how good it is (evaluation)."""
