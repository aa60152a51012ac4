"""MFIRRN workbench: 3D dense face alignment and reconstruction from a single image.

Quick use::

    import mfirrn
    faces = mfirrn.reconstruct("photo.jpg")          # default pretrained model, dlib HOG detector
    faces[0].landmarks, faces[0].pose.yaw
"""

__version__ = "0.1.0"
