-- Keep a node alive until Redis's clock plus its time to live.
-- KEYS: the nodes sorted set (node -> the millisecond it dies), the epoch key
-- ARGV: node id, time to live in milliseconds, an epoch to set if there is none
-- Returns {1 when the node was known else 0, the epoch}. The epoch is set once per
-- presence's life: a node that sees another than it saw before knows that Redis lost
-- everything (restarted empty), rather than that this node was purged.
local now = redis.call('TIME')
local until_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
redis.call('SET', KEYS[2], ARGV[3], 'NX')
local epoch = redis.call('GET', KEYS[2])
if known then
    return {1, epoch}
end
return {0, epoch}
