"""Model out: detections on images, folders and videos, evaluation, export."""
