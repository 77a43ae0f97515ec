-- The envelope fragment: included (worker.lua) by the scripts that enqueue by reference (publish, sweep).
--
-- envelope(queue, event_json, task_id) is the Celery protocol-2 task message, as kombu's Redis transport
-- stores it, for an event whose JSON (worker.delivery.taskmessage.encode_event) is kept in the outbox record;
-- or nil if event_json does not start as the model serialises it ('{"type":<string>,"id":<string>,': the
-- fields' declared order). The type and id are spliced in as the serialiser escaped them, so the publisher
-- and the sweeper render the same bytes. '"id": "' and '"delivery_tag": "' are matched by the sweeper.
-- Uses no KEYS or ARGV of its own.
local function jlit(s, p)
  if string.byte(s, p) ~= 34 then return nil end
  local i = p + 1
  while true do
    local c = string.byte(s, i)
    if c == nil then return nil end
    if c == 92 then i = i + 2 elseif c == 34 then return string.sub(s, p, i), i + 1 else i = i + 1 end
  end
end
local function envelope(queue, event, task_id)
  if string.sub(event, 1, 8) ~= '{"type":' then return nil end
  local type_lit, after = jlit(event, 9)
  if not type_lit or string.sub(event, after, after + 5) ~= ',"id":' then return nil end
  local id_lit = jlit(event, after + 6)
  if not id_lit then return nil end
  return '{"body": ' .. cjson.encode('[[' .. id_lit .. '], {}, {}]')
    .. ', "content-encoding": "utf-8", "content-type": "application/json", "headers": {"task": '
    .. type_lit .. ', "id": "' .. task_id .. '", "argsrepr": ' .. cjson.encode('[' .. id_lit .. ']')
    .. '}, "properties": {"delivery_info": {"exchange": "", '
    .. '"routing_key": ' .. cjson.encode(queue) .. '}, "body_encoding": "utf-8", "delivery_tag": "'
    .. task_id .. '"}}'
end
