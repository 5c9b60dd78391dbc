-- wrk script for bench/reload: GET the URL, and check every response body.
-- Usage: wrk ... URL -- BODY_A_FILE BODY_B_FILE
-- A response is good when its status is 200 and its body is exactly one of the two known
-- versions (A or B); anything else (another status, a truncated, empty or mixed body) is
-- bad. A response whose ETag was seen before with the other body counts as etag_mismatch.
-- done() prints one line "RELOAD_CHECK {json}" with wrk's own counters and these.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local fa = assert(io.open(args[1], "rb"))
    A = fa:read("*a"); fa:close()
    local fb = assert(io.open(args[2], "rb"))
    B = fb:read("*a"); fb:close()
    na, nb, bad, etag_mismatch, non200 = 0, 0, 0, 0, 0
    etags = {}
end

function response(status, headers, body)
    local which
    if status ~= 200 then
        non200 = non200 + 1
        bad = bad + 1
        return
    end
    if body == A then which = "A"; na = na + 1
    elseif body == B then which = "B"; nb = nb + 1
    else bad = bad + 1; return end
    local e = headers["ETag"] or headers["etag"] or headers["Etag"]
    if e then
        local seen = etags[e]
        if seen == nil then etags[e] = which
        elseif seen ~= which then etag_mismatch = etag_mismatch + 1 end
    end
end

function done(summary, latency, requests)
    local t = {na = 0, nb = 0, bad = 0, etag_mismatch = 0, non200 = 0}
    for _, th in ipairs(threads) do
        for k, _ in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
    end
    local e = summary.errors
    io.write(string.format(
        'RELOAD_CHECK {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, ' ..
        '"write_errors": %d, "status_errors": %d, "timeouts": %d, "body_a": %d, "body_b": %d, "bad": %d, ' ..
        '"non200": %d, "etag_mismatch": %d, "latency_p50_us": %d, "latency_p99_us": %d, "latency_max_us": %d}\n',
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
        t.na, t.nb, t.bad, t.non200, t.etag_mismatch,
        latency:percentile(50), latency:percentile(99), latency.max))
end
