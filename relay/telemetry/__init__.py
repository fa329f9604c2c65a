"""What the relay tells operators about itself: Prometheus metrics and structured logs."""
