#!/usr/bin/python3
"""The server-side times of the requests between two /metrics scrapes (Prometheus text of
`modernbert serve`), as one JSON line: requests and batches run, mean request duration, mean batch
(forward + post-processing) duration, mean tokenization, mean queue wait — to pair a client's round
trips with the forward times of the very same requests.

    metrics_delta.py BEFORE.txt AFTER.txt
"""
import json
import sys


def read(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def main():
    a, b = read(sys.argv[1]), read(sys.argv[2])
    d = lambda k: b.get(k, 0.0) - a.get(k, 0.0)
    res = {}
    res["requests"] = int(d("te_request_duration_count"))
    res["batches"] = int(d("te_batch_inference_duration_count"))
    for key, metric in [("request", "te_request_duration"), ("batch", "te_batch_inference_duration"),
                        ("tokenization", "te_request_tokenization_duration"), ("queue", "te_request_queue_duration")]:
        n = d(metric + "_count")
        res[key + "_mean_ms"] = 1000 * d(metric + "_sum") / n if n else None
    print(json.dumps(res))


if __name__ == "__main__":
    main()
