"""Camera frame sources (RTSP/HTTP/file through OpenCV's FFmpeg backend) for the detector worker."""
