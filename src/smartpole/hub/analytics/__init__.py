"""Analytics over readings: online anomaly detection (``anomaly``) and district forecasts
(``forecast``)."""
