"""User-facing messages of the `niemphong hsm` commands, in Vietnamese and English.

Kept apart from catalog.py, which merges them into CATALOG; the same rules
apply: the same placeholders in both languages, Vietnamese text in NFC.
"""

from __future__ import annotations

TOKEN_CATALOG: dict[str, dict[str, str]] = {
    "help.hsm": {"vi": "thiết bị giữ khóa (token/HSM) của niemphongd", "en": "niemphongd's key token (token/HSM)"},
    "help.hsm.probe": {
        "vi": "kiểm tra token của niemphongd theo một hồ sơ thiết bị, đạt hay không đạt ở từng mục",
        "en": "check niemphongd's token against a token profile, pass or fail per point",
    },
    "help.hsm.profile": {
        "vi": "tên hồ sơ thiết bị trong hsm_profiles/ của niemphongd, ví dụ softhsm2, yubihsm2, luna; "
              "bỏ trống để dùng hồ sơ trong cấu hình của niemphongd",
        "en": "name of a token profile in niemphongd's hsm_profiles/, e.g. softhsm2, yubihsm2, luna; "
              "leave out for the profile in niemphongd's configuration",
    },
    "reason.UNKNOWN_PROFILE": {
        "vi": "niemphongd không có hồ sơ thiết bị {profile}. Dùng một tên trong thư mục hsm_profiles/ của niemphongd.",
        "en": "niemphongd has no token profile {profile}. Use a name from niemphongd's hsm_profiles/ folder.",
    },

    "audit.op.TokenService/Probe": {"vi": "Kiểm tra token theo hồ sơ thiết bị", "en": "Probe the token"},

    # The probe report.
    "probe.title": {
        "vi": "Hồ sơ {profile} ({family}), token đang cấu hình theo hồ sơ {configured}",
        "en": "Profile {profile} ({family}); the token is configured with profile {configured}",
    },
    "probe.header": {"vi": "Mục|Kết quả|Hồ sơ cần|Token có", "en": "Point|Result|Profile needs|Token offers"},
    "probe.status.pass": {"vi": "ĐẠT", "en": "PASS"},
    "probe.status.fail": {"vi": "KHÔNG ĐẠT", "en": "FAIL"},
    "probe.status.not_required": {"vi": "không bắt buộc", "en": "not required"},
    "probe.passed": {
        "vi": "Kết quả: token đáp ứng hồ sơ {profile}.",
        "en": "Result: the token meets profile {profile}.",
    },
    "probe.failed": {
        "vi": "Kết quả: token KHÔNG đáp ứng hồ sơ {profile} ({count} mục không đạt).",
        "en": "Result: the token does NOT meet profile {profile} ({count} points failed).",
    },
    "probe.quirks": {"vi": "Đặc điểm đã biết của dòng thiết bị này:", "en": "Known quirks of this token family:"},
    "probe.quirk": {
        "vi": "- {summary}\n  Cách xử lý: {handling}\n  Nguồn: {source}",
        "en": "- {summary}\n  Handling: {handling}\n  Source: {source}",
    },
    "probe.point.module": {"vi": "mô-đun PKCS#11", "en": "PKCS#11 module"},
    "probe.point.token": {"vi": "token", "en": "token"},
    "probe.point.rng": {"vi": "bộ sinh số ngẫu nhiên", "en": "random number generator"},
    "probe.point.key-generation": {"vi": "sinh khóa mã hóa khóa", "en": "key-encryption key generation"},
    "probe.point.wrapping": {"vi": "bọc khóa dữ liệu", "en": "data key wrapping"},
    "probe.point.in-token": {"vi": "mã hóa trong token (AES-GCM)", "en": "encryption inside the token (AES-GCM)"},
    "probe.point.sessions": {"vi": "số phiên PKCS#11", "en": "PKCS#11 sessions"},
    "probe.point.level-key": {"vi": "khóa của độ {level}", "en": "key of level {level}"},
    "probe.reason.MODULE_MISMATCH": {
        "vi": "mô-đun đang dùng không phải mô-đun của dòng thiết bị này",
        "en": "the module in use is not this family's module",
    },
    "probe.reason.SELECTION_MISMATCH": {
        "vi": "token được chọn theo cách hồ sơ không dùng",
        "en": "the token is selected in a way the profile does not use",
    },
    "probe.reason.NOT_OFFERED": {"vi": "token không cung cấp cơ chế này", "en": "the token does not offer this mechanism"},
    "probe.reason.KEY_SIZE": {"vi": "token không hỗ trợ độ dài khóa cần dùng", "en": "the token does not support the key size needed"},
    "probe.reason.ROUND_TRIP_FAILED": {
        "vi": "thử bọc rồi mở lại một khóa tạm trên token không thành công",
        "en": "wrapping and unwrapping a temporary key in the token failed",
    },
    "probe.reason.TOO_MANY": {"vi": "niemphongd mở nhiều phiên hơn mức hồ sơ cho phép", "en": "niemphongd opens more sessions than the profile allows"},
    "probe.reason.MISSING": {"vi": "token chưa có khóa này", "en": "the token has no such key"},
    "probe.reason.WRONG_KIND": {"vi": "loại khóa khác loại hồ sơ cần", "en": "the key is of another kind than the profile needs"},
    "probe.reason.NOT_REQUIRED": {"vi": "hồ sơ không dùng mục này", "en": "the profile does not use this point"},
}
