"""Dagster sensors: thin wrappers over pure decision functions in the core."""

from mm_platform.orchestration.sensors.annotations import annotation_file_sensor, annotation_job
from mm_platform.orchestration.sensors.discovery import folder_media_sensor, ingest_job, s3_media_sensor
from mm_platform.orchestration.sensors.events import sqs_media_sensor

all_sensors = [s3_media_sensor, sqs_media_sensor, folder_media_sensor, annotation_file_sensor]
all_jobs = [ingest_job, annotation_job]

__all__ = [
    "all_jobs",
    "all_sensors",
    "annotation_file_sensor",
    "annotation_job",
    "folder_media_sensor",
    "ingest_job",
    "s3_media_sensor",
    "sqs_media_sensor",
]
