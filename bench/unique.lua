counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/v1.0/director/object/bench/f-" .. counter .. "-" .. math.random(1, 1000000000))
end
