"""The domain: the gateway's errors, the proxy-session model and the types every layer shares."""
