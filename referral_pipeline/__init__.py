"""Partner referral program pipeline: ingestion, attribution, rewards and payouts."""

__version__ = "0.1.0"
