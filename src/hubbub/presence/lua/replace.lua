-- Make this node's connections in Redis exactly those it has, after changes that may have
-- been lost (a call that failed while Redis was unreachable): take out what the node had
-- counted, put in what it has, and report who that made arrive or leave.
-- KEYS: this node's hash, the rooms hash
-- ARGV: the key prefix, then room, username, count for each of the node's entries
-- Returns {arrived, left}, each a flat list: room, username, room, username...
local before = {}
local function users_key(room)
    return ARGV[1] .. 'room:' .. room .. ':users'
end
local function split(field)
    local cut = string.find(field, '\n', 1, true)
    return string.sub(field, 1, cut - 1), string.sub(field, cut + 1)
end
local function note(room, username)
    local field = room .. '\n' .. username
    if before[field] == nil then
        before[field] = tonumber(redis.call('HGET', users_key(room), username) or '0')
    end
end
local function add(room, username, count)
    local key = users_key(room)
    if redis.call('HINCRBY', key, username, count) <= 0 then
        redis.call('HDEL', key, username)
    end
    if redis.call('HINCRBY', KEYS[2], room, count) <= 0 then
        redis.call('HDEL', KEYS[2], room)
    end
end
local old = redis.call('HGETALL', KEYS[1])
for i = 1, #old, 2 do
    local room, username = split(old[i])
    note(room, username)
    add(room, username, -tonumber(old[i + 1]))
end
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 3 do
    local room, username, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    note(room, username)
    add(room, username, count)
    redis.call('HINCRBY', KEYS[1], room .. '\n' .. username, count)
end
local arrived, left = {}, {}
for field, was in pairs(before) do
    local room, username = split(field)
    local now = tonumber(redis.call('HGET', users_key(room), username) or '0')
    if was == 0 and now > 0 then
        table.insert(arrived, room)
        table.insert(arrived, username)
    elseif was > 0 and now == 0 then
        table.insert(left, room)
        table.insert(left, username)
    end
end
return {arrived, left}
