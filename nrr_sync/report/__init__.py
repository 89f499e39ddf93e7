"""The report: reading the published tables (``data``), rendering them as text
(``text``, ``metrics``) and as one HTML page (``html_*``), and the command (``show``)."""
