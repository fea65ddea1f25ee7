"""Prefect flows of the MoU reporting service: thin wrappers around ``mou.service.protocol``."""
