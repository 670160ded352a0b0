"""Fleet mode: the layer every replica shares on Valkey/Redis (one cache, one single flight,
one AWS quota), behind each process's own cache. Off unless `GATEWAY_REDIS_URL` is set."""
