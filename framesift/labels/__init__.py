"""Auto-labelling: detector (+ SAM) output on kept frames exported as COCO or YOLO datasets."""

from framesift.labels.export import LabeledImage, LabelWriter, export_labels

__all__ = ["LabelWriter", "LabeledImage", "export_labels"]
