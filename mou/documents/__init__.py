"""Documents as PDF: the letters and the shared rendering (``pdf``), the assets they may use."""

# The one media type of the PDFs the service sends and serves.
PDF_CONTENT_TYPE = "application/pdf"
