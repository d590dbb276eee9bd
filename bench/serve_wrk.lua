-- wrk script for the serving benchmark (cross-check of bench/serve_load.mjs's closed loop):
-- POST /embed with TEI's body {"inputs": TEXT}, the texts of TEXTS (JSONL {"text", "tokens"},
-- written by bench/make_serve_texts.py) in turn, each connection starting at its own offset.
--
--   TEXTS=out/serve/work/texts.jsonl wrk -t1 -c64 -d120s --timeout 600s -s bench/serve_wrk.lua URL
--
-- At the end it prints one JSON line: requests, non-200 answers, socket errors, seconds, requests/s,
-- and tokens/s (the tokens of the texts sent, over the run; every answer must be a 200).
-- wrk's window cuts the big batches' bursts of answers, so use a run many batches long.
local texts, tokens = {}, {}

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return map[c] or string.format('\\u%04x', c:byte())
  end) .. '"'
end

local function load_texts()
  local path = os.getenv('TEXTS') or 'out/serve/work/texts.jsonl'
  for line in io.lines(path) do
    -- The file is ours (json.dumps): "text" then "tokens"; take the text's JSON literal as is.
    local lit = line:match('^{"text": (".-[^\\]"), "tokens"')
    local n = tonumber(line:match('"tokens": (%d+)}$'))
    if lit and n then
      texts[#texts + 1] = '{"inputs": ' .. lit .. '}'
      tokens[#tokens + 1] = n
    end
  end
  assert(#texts > 0, 'no texts in ' .. path)
end

load_texts()
-- Globals (not local): wrk's thread:get/set reach a thread's globals only.
counter, thread_id, non200 = 0, 0, 0
local threads = {}

function setup(thread)
  thread:set('thread_id', #threads)
  threads[#threads + 1] = thread
end

function init(args)
  counter = thread_id * 7919
  wrk.method = 'POST'
  wrk.headers['Content-Type'] = 'application/json'
end

function request()
  counter = counter + 1
  local i = counter % #texts + 1
  return wrk.format(nil, '/embed', nil, texts[i])
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get('non200') end
  local mean_tokens = 0
  for _, n in ipairs(tokens) do mean_tokens = mean_tokens + n end
  mean_tokens = mean_tokens / #tokens
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format('{"generator": "wrk", "requests": %d, "non200": %d, "socket_errors": %d, "seconds": %.3f, ' ..
    '"requests_per_s": %.4f, "tokens_per_s": %.2f, "latency_ms": {"p50": %.1f, "p99": %.1f, "max": %.1f}}\n',
    summary.requests, bad, e.connect + e.read + e.write + e.timeout, s, summary.requests / s,
    summary.requests / s * mean_tokens, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
