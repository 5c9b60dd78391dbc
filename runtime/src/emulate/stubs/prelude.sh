# ztp-emulate stub prelude (sourced): the device's facts, and `rec` to record a call.
# Every stub records what it was asked in commands.log, one call per line, newlines
# written as \n. The facts come from facts.env, written by the emulator at each boot.
Z=/run/ztp-emulate
. "$Z/facts.env"
rec() {
    local s
    # Password hashes never reach the record.
    s=$(printf '%s' "$*" | sed -E 's/[$]([0-9])[$][./A-Za-z0-9$]+/<$\1$ hash>/g')
    s=${s//$'\n'/\\n}
    printf '%s\n' "$s" >> "$Z/commands.log"
}
# The whole ZTP run dies with the box: kill the script's process group.
power_cycle() {
    rec "reboot: $*"
    kill -KILL 0
    exit 137
}
# What an image install leaves on record: the file and its sha256.
note_image() {
    local sum
    sum=$(sha256sum "$1" 2>/dev/null | awk '{ print $1 }')
    rec "image: $1 sha256=${sum:-missing}"
}
