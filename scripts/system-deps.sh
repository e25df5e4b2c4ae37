#!/usr/bin/env bash
# Install the Debian packages smartpole needs, only those missing. Usage: system-deps.sh test|python
set -euo pipefail
want=()
case "${1:-test}" in
  python) want+=(python3-venv) ;;
  test)
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || want+=(postgresql)
    command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || want+=(mosquitto)
    command -v chromium >/dev/null || want+=(chromium)
    # Chinese labels in the console's screenshots (scripts/screenshots.py)
    dpkg -s fonts-noto-cjk >/dev/null 2>&1 || want+=(fonts-noto-cjk)
    ;;
esac
[ ${#want[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${want[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}"
