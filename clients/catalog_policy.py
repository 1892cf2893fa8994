"""User-facing messages of the classification policy commands and scan options, in Vietnamese and English.

Kept apart from catalog.py, which merges them into CATALOG; the same rules
apply: the same placeholders in both languages, Vietnamese text in NFC.
"""

from __future__ import annotations

POLICY_CATALOG: dict[str, dict[str, str]] = {
    # scan: classification options.
    "help.classification": {"vi": "phân loại tài liệu", "en": "classification"},
    "help.scan.basis": {
        "vi": 'căn cứ xác định độ mật, ví dụ "Điểm a Khoản 2 Điều 1 Quyết định số 1722/QĐ-TTg"',
        "en": 'classification basis, e.g. "Điểm a Khoản 2 Điều 1 Quyết định số 1722/QĐ-TTg"',
    },
    "help.scan.stamp_from": {
        "vi": 'ngày bắt đầu ghi trên dấu "Thời hạn bảo vệ BMNN" (cần --stamp-until)',
        "en": 'first day on the "Thời hạn bảo vệ BMNN" stamp (needs --stamp-until)',
    },
    "help.scan.stamp_until": {
        "vi": 'ngày kết thúc ghi trên dấu "Thời hạn bảo vệ BMNN"',
        "en": 'last day on the "Thời hạn bảo vệ BMNN" stamp',
    },
    "help.scan.extended_until": {
        "vi": "thời hạn bảo vệ đã được cơ quan xác định BMNN gia hạn đến ngày này",
        "en": "the originating agency extended the protection through this day",
    },
    "help.scan.extension_decision": {
        "vi": "quyết định gia hạn, ví dụ \"Quyết định số 12/QĐ-UBND\"",
        "en": "the extension decision, e.g. \"Quyết định số 12/QĐ-UBND\"",
    },
    "help.scan.extension_date": {"vi": "ngày của quyết định gia hạn", "en": "date of the extension decision"},
    "help.scan.declassified_by": {
        "vi": "quyết định giải mật của người có thẩm quyền, hoặc của Lưu trữ lịch sử khi có --historical-archive, "
        "ví dụ \"Quyết định số 15/QĐ-LTLS\"",
        "en": "the declassification decision of a competent person, or of the historical archive with "
        "--historical-archive, e.g. \"Quyết định số 15/QĐ-LTLS\"",
    },
    "help.scan.declassified_on": {
        "vi": "ngày của quyết định giải mật (bắt buộc khi có --declassified-by)",
        "en": "date of the declassification decision (required with --declassified-by)",
    },
    "help.scan.historical_archive": {
        "vi": "tài liệu do Lưu trữ lịch sử lưu giữ và không xác định được cơ quan xác định BMNN; chỉ là "
        "không chứa BMNN khi có quyết định giải mật của Lưu trữ lịch sử (--declassified-by, --declassified-on), "
        "nếu không thì vẫn niêm phong (Tuyệt mật: từ chối)",
        "en": "a historical archive holds the document and its originating agency cannot be determined; it is "
        "not secret only with the archive's declassification decision (--declassified-by, --declassified-on), "
        "otherwise it is still sealed (Tuyệt mật: rejected)",
    },
    "help.scan.kind": {
        "vi": "loại văn bản điện tử có quyết định độ mật chung (xem niemphong policy show); "
        "khi có tùy chọn này có thể bỏ --level",
        "en": "kind of electronic document with a standing level decision (see niemphong policy show); "
        "--level may then be left out",
    },
    "scan.level_or_kind": {
        "vi": "Thiếu độ mật: dùng --level, hoặc --kind cho loại văn bản có quyết định độ mật chung.",
        "en": "No level: use --level, or --kind for a kind of document with a standing level decision.",
    },
    "arg.option_needs": {"vi": "{option} cần có {needs}.", "en": "{option} needs {needs}."},
    "scan.not_sealed": {
        "vi": "Không niêm phong {source}. {explanation}\n"
        "niemphongd đã ghi nhận quyết định này với mã {record_id}; không có tệp phong bì nào được tạo.",
        "en": "{source} was not sealed. {explanation}\n"
        "niemphongd recorded this decision as {record_id}; no envelope file was written.",
    },
    "scan.decision": {"vi": "Căn cứ quyết định: {explanation}", "en": "Why: {explanation}"},
    "reason.CLASSIFICATION_REFUSED": {
        "vi": "niemphongd từ chối theo quy tắc phân loại. {explanation}",
        "en": "niemphongd rejected the document under the classification rules. {explanation}",
    },
    "reason.EXTENSION_REJECTED": {
        "vi": "niemphongd không ghi nhận gia hạn: {why}",
        "en": "niemphongd did not record the extension: {why}",
    },
    "extension.NOT_LATER": {
        "vi": "ngày gia hạn đến không sau ngày cuối của thời hạn bảo vệ hiện tại (xem niemphong policy due).",
        "en": "the new last day is not after the current last protected day (see niemphong policy due).",
    },
    "extension.DECIDED_AFTER_TODAY": {
        "vi": "ngày của quyết định gia hạn sau ngày hôm nay.",
        "en": "the extension decision is dated after today.",
    },
    "extension.DECIDED_LATE": {
        "vi": "quyết định gia hạn ra sau khi thời hạn bảo vệ đã kết thúc; khi đó tài liệu đã đương nhiên được "
        "giải mật (Điều 22 Luật Bảo vệ bí mật nhà nước số 29/2018/QH14).",
        "en": "the extension was decided after the protection ended, when the document had already been "
        "declassified automatically (Article 22 of the Law on Protection of State Secrets No. 29/2018/QH14).",
    },
    "extension.OTHER": {"vi": "gia hạn không hợp lệ.", "en": "the extension is invalid."},
    "field.classification.basis": {"vi": "căn cứ (--basis)", "en": "basis (--basis)"},
    "field.classification.stamp.starts_on": {"vi": "ngày bắt đầu trên dấu (--stamp-from)", "en": "stamp start (--stamp-from)"},
    "field.classification.stamp.ends_on": {"vi": "ngày kết thúc trên dấu (--stamp-until)", "en": "stamp end (--stamp-until)"},
    "field.classification.extension.ends_on": {"vi": "ngày gia hạn đến (--extended-until)", "en": "extended until (--extended-until)"},
    "field.classification.extension.decision": {"vi": "quyết định gia hạn (--extension-decision)", "en": "extension decision (--extension-decision)"},
    "field.classification.extension.decided_on": {"vi": "ngày quyết định gia hạn (--extension-date)", "en": "extension date (--extension-date)"},
    "field.classification.declassification.decision": {"vi": "quyết định giải mật (--declassified-by)", "en": "declassification decision (--declassified-by)"},
    "field.classification.declassification.decided_on": {"vi": "ngày giải mật (--declassified-on)", "en": "declassification date (--declassified-on)"},
    "field.classification.standing_decision": {"vi": "loại văn bản (--kind)", "en": "kind of document (--kind)"},
    "field.ends_on": {"vi": "ngày gia hạn đến (--until)", "en": "new last day (--until)"},
    "field.decided_on": {"vi": "ngày quyết định (--decided-on)", "en": "decision date (--decided-on)"},
    "field.decision": {"vi": "quyết định (--decision)", "en": "decision (--decision)"},
    "field.as_of": {"vi": "ngày xét (--date)", "en": "date (--date)"},
    "field.within_days": {"vi": "khoảng thời gian (--within)", "en": "period (--within)"},

    # policy: help text.
    "help.policy": {"vi": "chính sách phân loại và khóa theo độ mật", "en": "classification and key policy"},
    "help.policy.show": {"vi": "in chính sách đang áp dụng", "en": "print the policy in force"},
    "help.policy.check": {
        "vi": "xét từng dòng của danh mục bàn giao (không niêm phong gì) và in bảng kết quả; "
        "mã thoát 3 khi có dòng bị từ chối hoặc không đọc được, 0 khi mọi dòng đều xét được",
        "en": "decide every row of a handover list without sealing anything, and print the decisions; "
        "exit code 3 when any row is rejected or unreadable, 0 when every row can go ahead",
    },
    "help.policy.manifest": {
        "vi": "tệp CSV danh mục tài liệu bàn giao (UTF-8, dấu phẩy hoặc chấm phẩy, tiêu đề tiếng Việt)",
        "en": "handover list as CSV (UTF-8, comma or semicolon, Vietnamese headers)",
    },
    "help.policy.date": {
        "vi": "xét như vào ngày này thay cho hôm nay (YYYY-MM-DD hoặc dd/mm/yyyy)",
        "en": "decide as on this date instead of today (YYYY-MM-DD or dd/mm/yyyy)",
    },
    "help.policy.due": {
        "vi": "liệt kê tài liệu đã niêm phong sắp hết hoặc đã hết thời hạn bảo vệ, để rà soát hoặc gia hạn",
        "en": "list sealed documents whose protection ends soon or has ended, for review or extension",
    },
    "help.policy.within": {
        "vi": "trong khoảng này kể từ hôm nay: 90d (ngày), 12w (tuần) hoặc 90; mặc định 90d",
        "en": "within this period from today: 90d (days), 12w (weeks) or 90; default 90d",
    },
    "help.policy.extend": {
        "vi": "ghi nhận quyết định gia hạn thời hạn bảo vệ của cơ quan xác định BMNN (người phê duyệt)",
        "en": "record the originating agency's extension of a protection period (approver)",
    },
    "help.policy.artefact_id": {"vi": "mã tài liệu (32 chữ số hex)", "en": "artefact id (32 hex digits)"},
    "help.policy.until": {"vi": "ngày cuối mới của thời hạn bảo vệ", "en": "new last protected day"},
    "help.policy.decision": {
        "vi": "quyết định gia hạn, ví dụ \"Quyết định số 12/QĐ-UBND\"",
        "en": "the extension decision, e.g. \"Quyết định số 12/QĐ-UBND\"",
    },
    "help.policy.decided_on": {"vi": "ngày của quyết định gia hạn", "en": "date of the extension decision"},
    "arg.within_invalid": {
        "vi": "khoảng thời gian không hợp lệ: {value}; dùng 90d, 12w hoặc 90, tối đa {max} ngày",
        "en": "invalid period: {value}; use 90d, 12w or 90, at most {max} days",
    },
    "arg.artefact_id_invalid": {
        "vi": "mã tài liệu không hợp lệ: {value}; mã tài liệu gồm 32 chữ số hex, như lệnh niemphong inspect in ra",
        "en": "invalid artefact id: {value}; an artefact id is 32 hex digits, as printed by niemphong inspect",
    },

    # policy check: the handover list.
    "manifest.bad_flag": {
        "vi": "giá trị không hợp lệ: \"{value}\"; dùng \"có\" hoặc để trống",
        "en": "invalid value: \"{value}\"; use \"có\" or leave it empty",
    },
    "manifest.row_problem": {
        "vi": "Từ chối: {problem}. Sửa danh mục rồi xét lại.",
        "en": "Rejected: {problem}. Correct the list and check it again.",
    },
    "decision.seal": {"vi": "Niêm phong ({level})", "en": "Seal ({level})"},
    "decision.not_secret": {"vi": "Không chứa BMNN (điểm {rule})", "en": "Not secret (rule {rule})"},
    "decision.refuse": {"vi": "Từ chối", "en": "Rejected"},
    "check.row": {"vi": "STT", "en": "Row"},
    "check.doc_number": {"vi": "Số tài liệu", "en": "Document number"},
    "check.stated_level": {"vi": "Độ mật ghi", "en": "Stated level"},
    "check.decision": {"vi": "Kết quả", "en": "Decision"},
    "check.stamp": {"vi": "Đóng dấu Giải mật", "en": "Stamp Giải mật"},
    "check.until": {"vi": "Bảo vệ đến", "en": "Protected until"},
    "check.reasons": {"vi": "Lý do:", "en": "Reasons:"},
    "check.reason_line": {"vi": "  {row}. {reason}", "en": "  {row}. {reason}"},
    "check.summary": {
        "vi": "{total} tài liệu: {seal} niêm phong, {not_secret} không chứa BMNN, {refuse} từ chối. "
        "Chưa có gì được niêm phong.",
        "en": "{total} documents: {seal} to seal, {not_secret} not secret, {refuse} rejected. "
        "Nothing was sealed.",
    },

    # policy show
    "policy.file": {"vi": "Tệp chính sách:     {path}", "en": "Policy file:        {path}"},
    "policy.sha256": {"vi": "SHA-256:            {sha256}", "en": "SHA-256:            {sha256}"},
    "policy.development_on": {
        "vi": "Chế độ:             PHÁT TRIỂN (chấp nhận token phần mềm và danh mục mẫu; "
        "không dùng cho bí mật nhà nước)",
        "en": "Mode:               DEVELOPMENT (accepts a software token and the sample catalog; "
        "never for state secrets)",
    },
    "policy.development_off": {"vi": "Chế độ:             vận hành", "en": "Mode:               production"},
    "policy.token_profile": {"vi": "Loại token:         {profile}", "en": "Token profile:      {profile}"},
    "policy.require_basis": {"vi": "Bắt buộc ghi căn cứ: {value}", "en": "Basis required:     {value}"},
    "policy.today": {"vi": "Ngày của niemphongd: {today}", "en": "niemphongd's date:  {today}"},
    "policy.col.level": {"vi": "Độ mật", "en": "Level"},
    "policy.col.key": {"vi": "Khóa", "en": "Key"},
    "policy.col.profiles": {"vi": "Loại token chấp nhận", "en": "Token profiles"},
    "policy.col.approvals": {"vi": "Số phê duyệt", "en": "Approvals"},
    "policy.col.grant": {"vi": "Quyền mở", "en": "Grant"},
    "policy.col.printing": {"vi": "Được in", "en": "Printing"},
    "policy.col.rotation": {"vi": "Đổi khóa sau", "en": "Rotation"},
    "policy.col.custodians": {"vi": "Người giữ khóa xác nhận", "en": "Custodians"},
    "policy.col.years": {"vi": "Thời hạn bảo vệ", "en": "Protection"},
    "policy.any_hardware": {"vi": "mọi token phần cứng", "en": "any hardware token"},
    "policy.col.encryption": {"vi": "Mã hóa", "en": "Encryption"},
    "policy.encryption.host": {"vi": "trên máy chủ", "en": "on the host"},
    "policy.encryption.token": {"vi": "trong token", "en": "in the token"},
    "policy.grant_value": {"vi": "{opens} lượt trong {hours} giờ", "en": "{opens} open(s) within {hours} h"},
    "policy.days": {"vi": "{days} ngày", "en": "{days} days"},
    "policy.years": {"vi": "{years} năm", "en": "{years} years"},
    "policy.catalog": {"vi": "Danh mục bí mật nhà nước:", "en": "Catalogs of state secrets:"},
    "policy.catalog_in_force": {
        "vi": "  {decision}: {items} mục, đang áp dụng",
        "en": "  {decision}: {items} item(s), in force",
    },
    "policy.catalog_sample": {
        "vi": "  {decision}: {items} mục, DỮ LIỆU MẪU, không phải danh mục thật",
        "en": "  {decision}: {items} item(s), SAMPLE DATA, not a real catalog",
    },
    "policy.catalog_superseded": {
        "vi": "  {decision}: đã được thay thế (căn cứ dẫn danh mục này thuộc điểm đ)",
        "en": "  {decision}: replaced (a basis citing it falls under rule đ)",
    },
    "policy.standing": {
        "vi": "Quyết định độ mật theo loại văn bản:",
        "en": "Standing decisions for kinds of documents:",
    },
    "policy.standing_entry": {
        "vi": "  {kind}: {name}; độ {level}; căn cứ {basis}; {decision} ngày {decided_on}",
        "en": "  {kind}: {name}; {level}; basis {basis}; {decision} of {decided_on}",
    },

    # policy due and extend
    "policy.due_empty": {
        "vi": "Không có tài liệu nào hết thời hạn bảo vệ trong {days} ngày tới.",
        "en": "No document's protection ends within the next {days} days.",
    },
    "due.artefact_id": {"vi": "Mã tài liệu", "en": "Artefact id"},
    "due.level": {"vi": "Độ mật", "en": "Level"},
    "due.doc_number": {"vi": "Số tài liệu", "en": "Document number"},
    "due.issued_on": {"vi": "Ngày ban hành", "en": "Issued"},
    "due.until": {"vi": "Bảo vệ đến", "en": "Protected until"},
    "due.days_left": {"vi": "Còn (ngày)", "en": "Days left"},
    "due.source": {"vi": "Theo", "en": "Set by"},
    "due.ended": {"vi": "đã hết {days} ngày", "en": "ended {days} days ago"},
    "due.source.period": {"vi": "thời hạn luật định", "en": "statutory period"},
    "due.source.stamp": {"vi": "dấu thời hạn bảo vệ", "en": "protection stamp"},
    "due.source.extension": {"vi": "gia hạn", "en": "extension"},
    "policy.extended": {
        "vi": "Đã ghi nhận gia hạn: tài liệu {artefact_id} được bảo vệ đến hết ngày {until}.",
        "en": "Extension recorded: artefact {artefact_id} is protected through {until}.",
    },
}
