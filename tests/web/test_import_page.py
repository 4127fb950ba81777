"""The dashboard's CSV import page: same import and report as the command line; admin and
front desk only; CSRF-checked; all or nothing."""

from __future__ import annotations

from tests.integration.clinic import Clinic
from tests.integrations.test_imports import BAD, GOOD
from tests.web.conftest import Browser, add_account


def _upload(b: Browser, content: str, kind: str = "appointments", dry_run: bool = False):
    data = {"csrf": b.csrf("/import"), "kind": kind}
    if dry_run:
        data["dry_run"] = "1"
    return b.http.post("/import", data=data, files={"file": ("visits.csv", content, "text/csv")})


def test_import_page(sqlite_clinic: Clinic) -> None:
    clinician = Browser(sqlite_clinic.base_url)
    clinician.sign_in(add_account(sqlite_clinic, "clinician"))
    assert clinician.get("/import").status_code == 403
    clinician.close()

    b = Browser(sqlite_clinic.base_url)
    b.sign_in(add_account(sqlite_clinic, "frontdesk"))
    page = b.get("/import")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    # Without the CSRF token: refused, nothing imported.
    r = b.http.post("/import", data={"kind": "appointments"}, files={"file": ("v.csv", GOOD)})
    assert r.status_code == 403

    bad = _upload(b, BAD)
    assert bad.status_code == 422
    assert "nothing written" in bad.text
    for line in ("<td>3</td>", "<td>4</td>", "<td>8</td>"):
        assert line in bad.text
    assert "Alex Rivera" not in b.get("/patients").text

    dry = _upload(b, GOOD, dry_run=True)
    assert dry.status_code == 200 and "checked (nothing written)" in dry.text
    assert "appointments created: 3" in dry.text
    assert "Alex Rivera" not in b.get("/patients").text

    done = _upload(b, GOOD)
    assert done.status_code == 200 and "imported" in done.text
    assert "Alex Rivera" in b.get("/patients").text
    again = _upload(b, GOOD)
    assert "appointments unchanged: 3" in again.text
    b.close()
