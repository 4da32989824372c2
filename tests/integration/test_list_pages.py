"""List in pages: page_size (default 1000, max 5000) and page_token in,
next_page_token out, jobs in id order; a page also stays under ~3 MiB so it
fits the 4 MiB clients accept; runctl list fetches every page."""

import json

import grpc
import pytest

from conftest import MiB, pb, pb_grpc, rpc_error, start, unused_ulid, wait


def start_true(stub, n):
    return [stub.Start(pb.StartRequest(command=pb.Command(path="/bin/true")), timeout=10).job_id
            for _ in range(n)]


def all_pages(stub, **kw):
    pages, token = [], ""
    while True:
        r = stub.List(pb.ListRequest(page_token=token, **kw), timeout=30)
        pages.append([j.job_id for j in r.jobs])
        if not r.next_page_token:
            return pages
        assert r.next_page_token == pages[-1][-1]
        token = r.next_page_token
        assert len(pages) < 100


@pytest.mark.timeout(120)
def test_2500_jobs_in_pages(rund, stub, ctl):
    ids = start_true(stub, 2500)
    assert ids == sorted(ids)
    pages = all_pages(stub, page_size=1000)
    assert [len(p) for p in pages] == [1000, 1000, 500]
    flat = [i for p in pages for i in p]
    assert flat == ids  # none missing, no duplicates, id order
    # default page size is 1000 too
    r = stub.List(pb.ListRequest(), timeout=30)
    assert len(r.jobs) == 1000 and r.next_page_token == ids[999]
    # a token of an id that is not (or no longer) a job still works: after it
    r = stub.List(pb.ListRequest(page_token=ids[1234].lower(), page_size=3), timeout=30)
    assert [j.job_id for j in r.jobs] == ids[1235:1238]
    # newest first, in pages too: a token of an id gives the ones before it
    r = stub.List(pb.ListRequest(newest_first=True, page_size=3), timeout=30)
    assert [j.job_id for j in r.jobs] == ids[::-1][:3] and r.next_page_token == ids[-3]
    r = stub.List(pb.ListRequest(newest_first=True, page_token=ids[1234].lower(), page_size=3),
                  timeout=30)
    assert [j.job_id for j in r.jobs] == ids[1231:1234][::-1]
    # runctl list shows them all (table and JSON), newest first
    t = ctl("list", timeout=60)
    assert t.rc == 0, t
    rows = t.text.splitlines()
    assert len(rows) == 2501 and rows[0].startswith("ID")
    assert [row.split()[0] for row in rows[1:]] == ids[::-1]
    j = ctl("list", "--json", timeout=60)
    assert j.rc == 0, j
    assert [x["job_id"] for x in json.loads(j.out)] == ids[::-1]
    j = ctl("list", "--json", "--oldest-first", timeout=60)
    assert [x["job_id"] for x in json.loads(j.out)] == ids
    # --limit: the newest N (across a page boundary too), or the oldest N
    t = ctl("list", "--limit", "1200", timeout=60)
    assert [row.split()[0] for row in t.text.splitlines()[1:]] == ids[::-1][:1200]
    j = ctl("list", "--json", "--limit", "2", "--oldest-first", timeout=60)
    assert [x["job_id"] for x in json.loads(j.out)] == ids[:2]


def test_page_token_and_size_are_checked(stub):
    ids = start_true(stub, 3)
    for size in (-1, 5001, 2**31 - 1):
        e = rpc_error(stub.List, pb.ListRequest(page_size=size), timeout=10)
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert "page_size %d is out of range (1..5000; 0 = 1000)" % size in e.details()
    for tok in ("xyz", ids[0] + "0", "8" + ids[0][1:], "\x00" * 26):
        e = rpc_error(stub.List, pb.ListRequest(page_token=tok), timeout=10)
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert "is not a next_page_token of a List" in e.details(), e.details()
    # the last page has no token; past the end is an empty page
    r = stub.List(pb.ListRequest(page_size=3), timeout=10)
    assert [j.job_id for j in r.jobs] == ids and r.next_page_token == ""
    r = stub.List(pb.ListRequest(page_size=2), timeout=10)
    assert r.next_page_token == ids[1]
    r = stub.List(pb.ListRequest(page_token=ids[2]), timeout=10)
    assert list(r.jobs) == [] and r.next_page_token == ""
    r = stub.List(pb.ListRequest(page_token=unused_ulid()), timeout=10)
    assert r.next_page_token == ""
    # filters apply on every page
    tagged = [start(stub, "/bin/true", tags=["t"]).job_id for _ in range(3)]
    start_true(stub, 1)
    tagged.append(start(stub, "/bin/true", tags=["t"]).job_id)
    assert all_pages(stub, page_size=2, tag="t") == [tagged[:2], tagged[2:]]


def test_a_page_fits_a_default_client(rund, stub, ctl):
    # 12 jobs of ~600 KB of args each: 7 MB in all, pages cut at ~3 MiB
    big = ["x" * (120 * 1024)] * 5
    ids = [start(stub, "/bin/true", *big).job_id for _ in range(12)]
    for j in ids:
        wait(stub, j)
    plain = pb_grpc.JobsStub(grpc.insecure_channel(rund.addr))  # 4 MiB receive limit
    pages = all_pages(plain, page_size=1000)
    assert len(pages) >= 3
    assert [i for p in pages for i in p] == ids
    r = ctl("list", timeout=60)
    assert r.rc == 0, r
    assert len(r.text.splitlines()) == 13
