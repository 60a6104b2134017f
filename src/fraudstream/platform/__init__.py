"""The embedded platform: every service as a supervised local process on loopback."""
