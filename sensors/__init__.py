"""The deployment layer's sensors and jobs: the installed package's (``mm_platform.orchestration.sensors``)."""

from mm_platform.orchestration.sensors import (
    all_jobs,
    all_sensors,
    annotation_file_sensor,
    folder_media_sensor,
    s3_media_sensor,
    sqs_media_sensor,
)

__all__ = [
    "all_jobs",
    "all_sensors",
    "annotation_file_sensor",
    "folder_media_sensor",
    "s3_media_sensor",
    "sqs_media_sensor",
]
