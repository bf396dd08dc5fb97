#!/usr/bin/env bash
# Installs the Debian packages the tests call (a fresh machine has none of them): headless
# Chromium for the verification page and ChromeDriver for the console's end-to-end test,
# poppler/zbar/qpdf for the PDFs, NSS's certutil for pdfsig, librsvg (rsvg-convert) for the
# exported SVG QR code, python3-venv for the interoperability check, the PostgreSQL client for
# pg_isready, Tesseract and its simplified-Chinese model for drafting manifests from scans.
# Idempotent and quiet when all are there.
set -euo pipefail
needed=()
command -v chromium >/dev/null || needed+=(chromium)
command -v chromedriver >/dev/null || needed+=(chromium-driver)
command -v pdftoppm >/dev/null || needed+=(poppler-utils)
command -v zbarimg >/dev/null || needed+=(zbar-tools)
command -v qpdf >/dev/null || needed+=(qpdf)
# certutil: the PAdES tests give pdfsig an NSS database trusting the seal CA.
command -v certutil >/dev/null || needed+=(libnss3-tools)
command -v rsvg-convert >/dev/null || needed+=(librsvg2-bin)
command -v pg_isready >/dev/null || needed+=(postgresql-client)
command -v tesseract >/dev/null || needed+=(tesseract-ocr)
[ -e /usr/share/tesseract-ocr/5/tessdata/chi_sim.traineddata ] || needed+=(tesseract-ocr-chi-sim)
python3 -c 'import venv, ensurepip' 2>/dev/null || needed+=(python3-venv)
if [ ${#needed[@]} -gt 0 ]; then
    echo "installing: ${needed[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${needed[@]}" > /dev/null
fi
echo "test dependencies present"
