"""MoU reporting service: progress reports for the CMS Bukhara Deer MoU and CAMI."""

__version__ = "0.1.0"
