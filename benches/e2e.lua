-- wrk script for benches/e2e.sh: each request presents the next of the
-- pre-created session cookies listed (one per line) in $COOKIES.
local cookies = {}
for line in io.lines(os.getenv("COOKIES")) do
  cookies[#cookies + 1] = line
end
local i = math.random(#cookies)

request = function()
  i = i % #cookies + 1
  return wrk.format("GET", "/", { ["Cookie"] = cookies[i] })
end

-- wrk itself reports "Non-2xx or 3xx responses" when any occur.
