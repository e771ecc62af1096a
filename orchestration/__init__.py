"""Dagster orchestration of the referral pipeline: one Definitions object in `orchestration.definitions`."""
