"""Finding faces: the detector registry (FaceBoxes, dlib HOG and CNN, chains of them) and landmark files."""

from mfirrn.detect.registry import (
    DEFAULT_DETECTOR,
    Detector,
    DlibCNN,
    DlibHOG,
    FirstOf,
    LandmarkFileError,
    available_detectors,
    create_detector,
    read_landmarks,
)

__all__ = ["Detector", "DlibHOG", "DlibCNN", "FirstOf", "create_detector", "available_detectors", "read_landmarks",
           "LandmarkFileError", "DEFAULT_DETECTOR"]
