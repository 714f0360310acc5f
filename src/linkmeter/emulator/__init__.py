"""A local stand-in for every provider API, a synthetic web and a DNS server."""
