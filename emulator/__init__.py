"""Local stand-in for AWS Chime SDK Voice GetProxySession, speaking its rest-json wire protocol."""
