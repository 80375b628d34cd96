"""Services: each takes plain values, owns one transaction, returns plain results."""
