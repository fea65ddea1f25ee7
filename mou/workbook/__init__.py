"""Excel workbooks: templates for ministries, and a strict, tolerant, safe reader."""
