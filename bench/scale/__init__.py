"""What gproxy-mp's processes cost in memory and start-up, with many endpoints and many routes
(``python -m bench scale``)."""
