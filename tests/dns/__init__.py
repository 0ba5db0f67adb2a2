"""DNS tier: the real CLI resolving `dns:` targets against a real dnsmasq."""
