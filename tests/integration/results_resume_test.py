"""A long `predict --limit N --results FILE` run resumes after an interruption
and ends with the same results file as an uninterrupted run
(tests/integration/inference.cmake).

On the shipped MNIST test set, CryptoNets model, slots packing (two images per
ciphertext, so a batch is two images):

1. uninterrupted: --limit 6 --results a.jsonl
2. interrupted by Ctrl-C: --limit 6 --results b.jsonl, SIGINT once the first
   batch's lines are in the file: exit status 130, only complete lines;
   then a line cut short (as a crash in the middle of a write leaves it) is
   appended by hand; the same command again resumes, drops the partial line
   and finishes.
3. the two files hold the same images with the same labels and classes
   (the logit error and the seconds differ from run to run: fresh encryption
   noise, another machine load), and the resumed run's JSON summary covers
   all 6 images.
4. refusals: the file given to a run of another model, and a file that is not
   a results file, exit 1 with a message and are left untouched.

usage: results_resume_test.py CRYPTODL SOURCE_DIR WORK_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

LIMIT = 6
DETERMINISTIC = ("image", "label", "plaintext_class", "encrypted_class")


def predict(cryptodl, src, model, results, limit=LIMIT):
    return [cryptodl, "predict", os.path.join(src, "models", model), "--packing", "slots", "--limit", str(limit),
            "--data-dir", os.path.join(src, "data"), "--json", "--threads", "2", "--results", results]


def run(args, expect):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    print("$ " + " ".join(args[1:3]) + " ... exit %d\n" % p.returncode + p.stderr[-1500:], flush=True)
    if p.returncode != expect:
        sys.exit("FAIL: exit status %d, expected %d" % (p.returncode, expect))
    return p


def lines_of(path):
    with open(path) as f:
        text = f.read()
    if not text.endswith("\n"):
        sys.exit("FAIL: %s ends in an unfinished line" % path)
    rows = [json.loads(l) for l in text.splitlines()]
    return rows[0], rows[1:]


def main():
    cryptodl, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    a, b = os.path.join(work, "a.jsonl"), os.path.join(work, "b.jsonl")

    full = run(predict(cryptodl, src, "mnist_cryptonets.onnx", a), 0)
    head_a, rows_a = lines_of(a)
    assert len(rows_a) == LIMIT, rows_a
    assert json.loads(full.stdout)["images"] == LIMIT

    # interrupted by Ctrl-C after the first batch's lines are written
    p = subprocess.Popen(predict(cryptodl, src, "mnist_cryptonets.onnx", b), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if os.path.exists(b) and open(b).read().count("\n") >= 2:  # the header and one image
            p.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    out, err = p.communicate(timeout=300)
    print(err[-1500:])
    if p.returncode == 0:
        print("note: the run finished before the signal arrived; the resume below has nothing left to do")
    elif p.returncode != 130:
        sys.exit("FAIL: exit status %d after Ctrl-C, expected 130" % p.returncode)
    else:
        summary = json.loads(out)
        assert summary["interrupted"] is True and summary["images"] < LIMIT, summary
    _, rows_b = lines_of(b)
    assert 1 <= len(rows_b) <= LIMIT
    with open(b, "a") as f:  # what a crash in the middle of a write leaves
        f.write('{"image":%d,"label":' % len(rows_b))

    resumed = run(predict(cryptodl, src, "mnist_cryptonets.onnx", b), 0)
    head_b, rows_b = lines_of(b)
    summary = json.loads(resumed.stdout)
    assert summary["images"] == LIMIT and summary["interrupted"] is False, summary
    assert summary["resumed_images"] + summary["images_this_run"] == LIMIT, summary
    assert head_a == head_b, (head_a, head_b)
    strip = lambda rows: [{k: r[k] for k in DETERMINISTIC} for r in rows]
    if strip(rows_a) != strip(rows_b):
        sys.exit("FAIL: the resumed results differ from the uninterrupted run's:\n%s\n%s" % (rows_a, rows_b))
    assert all(r["plaintext_class"] == r["encrypted_class"] for r in rows_b), rows_b
    assert json.loads(full.stdout)["encrypted_accuracy"] == summary["encrypted_accuracy"]

    # refusals, file untouched
    before = open(b).read()
    run(predict(cryptodl, src, "mnist_deep.onnx", b, limit=1), 1)
    assert open(b).read() == before
    other = os.path.join(work, "other.txt")
    with open(other, "w") as f:
        f.write("not results\n")
    run(predict(cryptodl, src, "mnist_cryptonets.onnx", other), 1)
    assert open(other).read() == "not results\n"
    print("OK: resumed results equal the uninterrupted run's")


if __name__ == "__main__":
    main()
