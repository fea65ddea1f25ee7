"""Excel workbooks: templates for ministries, and a strict, tolerant, safe reader."""

# The one media type of the workbooks the service sends and takes back (.xlsx).
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
