-- Unique paths (no stat cache hits) on the route BENCH_ROUTE names ("object" by default).
local route = os.getenv("BENCH_ROUTE") or "object"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/v1.0/director/" .. route .. "/bench/f-" .. counter .. "-" .. math.random(1, 1000000000))
end
