"""Video: reading and writing clips and cameras, tracking faces across frames, smoothing, synthetic test clips."""

from mfirrn.video.io import VIDEO_SUFFIXES, VideoError, VideoInfo, VideoReader, VideoWriter, is_video

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoInfo", "VideoReader", "VideoWriter", "is_video"]
