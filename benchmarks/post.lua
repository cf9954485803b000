-- wrk script: POST the C++ load test's 3-metric request, for comparing
-- `metricstream bench` against wrk on the same endpoint.
--
--   wrk -t2 -c20 -d30s -s benchmarks/post.lua http://127.0.0.1:8080/metrics
--
-- No request() function: wrk then builds the request once and is at its
-- fastest, so it is the stronger ceiling to compare against.
--
-- The body is fixed (wrk cannot cheaply vary it); `metricstream bench`
-- sends varying values of the same shape.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "load_client_0"
wrk.body = '{"metrics":['
  .. '{"name":"cpu_usage","value":42.123456,"type":"gauge","tags":{"host":"web1","region":"us-west"}},'
  .. '{"name":"memory_usage","value":4294967296,"type":"gauge","tags":{"host":"web1"}},'
  .. '{"name":"requests_total","value":500,"type":"counter","tags":{"service":"api","host":"web1"}}'
  .. ']}'
