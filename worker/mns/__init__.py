"""MNS (Alibaba Cloud Message Service) queue consumer, body decoding, and the bundled emulator."""
