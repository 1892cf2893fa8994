"""User-facing messages of the niemphong command line, in Vietnamese and English.

Each message id maps to its text in every language, so that a translator
can compare them side by side. Placeholders use ``str.format`` names and must be the
same in both languages. Vietnamese text is NFC; a test checks both.
"""

from __future__ import annotations

CATALOG: dict[str, dict[str, str]] = {
    # Units and prefixes.
    "unit.bytes": {"vi": "{count} byte", "en": "{count} bytes"},
    "cli.error": {"vi": "Lỗi: {message}", "en": "Error: {message}"},
    "cli.warning": {"vi": "Cảnh báo: {message}", "en": "Warning: {message}"},
    "cli.interrupted": {
        "vi": "Đã dừng theo yêu cầu (Ctrl+C). Không có tệp kết quả nào được giữ lại.",
        "en": "Interrupted (Ctrl+C). No output file was kept.",
    },
    "cli.terminated": {
        "vi": "Đã dừng do nhận tín hiệu {signal}. Không có tệp kết quả nào được giữ lại.",
        "en": "Stopped by signal {signal}. No output file was kept.",
    },
    "word.yes": {"vi": "có", "en": "yes"},
    "word.no": {"vi": "không", "en": "no"},
    "word.unknown": {"vi": "(không rõ)", "en": "(unknown)"},
    "word.none": {"vi": "(không có)", "en": "(none)"},
    "word.or": {"vi": " hoặc ", "en": " or "},
    "word.and": {"vi": " và ", "en": " and "},

    # argparse: section titles and translated error messages.
    "argparse.usage_prefix": {"vi": "Cách dùng: ", "en": "usage: "},
    "argparse.positionals": {"vi": "đối số", "en": "positional arguments"},
    "argparse.options": {"vi": "tùy chọn", "en": "options"},
    "argparse.commands": {"vi": "lệnh", "en": "commands"},
    "argparse.error_line": {"vi": "{prog}: lỗi: {message}", "en": "{prog}: error: {message}"},
    "argparse.required": {
        "vi": "thiếu đối số bắt buộc: {names}",
        "en": "the following arguments are required: {names}",
    },
    "argparse.unrecognized": {
        "vi": "đối số không hợp lệ: {names}",
        "en": "unrecognized arguments: {names}",
    },
    "argparse.invalid_choice": {
        "vi": "đối số {name}: giá trị {value} không hợp lệ (chọn một trong: {choices})",
        "en": "argument {name}: invalid choice: {value} (choose from {choices})",
    },
    "argparse.expected_one": {
        "vi": "đối số {name}: thiếu giá trị",
        "en": "argument {name}: expected one argument",
    },
    "argparse.not_allowed_with": {
        "vi": "đối số {name} không dùng được cùng với {other}",
        "en": "argument {name}: not allowed with argument {other}",
    },
    "argparse.ambiguous": {
        "vi": "tùy chọn {option} không rõ ràng, có thể là: {matches}",
        "en": "ambiguous option: {option} could match {matches}",
    },
    "argparse.argument": {"vi": "đối số {name}: {detail}", "en": "argument {name}: {detail}"},

    # Help text.
    "help.help": {"vi": "hiện hướng dẫn này rồi thoát", "en": "show this help message and exit"},
    "help.description": {
        "vi": "Niêm Phong: niêm phong (mã hóa) tài liệu bí mật nhà nước đã số hóa và "
        "khai thác chúng qua niemphongd.",
        "en": "Niêm Phong: seal (encrypt) digitized state-secret documents and give "
        "access to them through niemphongd.",
    },
    "help.lang": {
        "vi": "ngôn ngữ hiển thị: vi (mặc định) hoặc en; không có tùy chọn này thì theo LC_ALL/LANG",
        "en": "display language: vi (default) or en; without this option LC_ALL/LANG decide",
    },
    "help.verbose": {
        "vi": "ghi nhật ký gỡ lỗi (tiếng Anh) ra stderr",
        "en": "write debug log lines to stderr",
    },
    "help.server": {
        "vi": "địa chỉ niemphongd: unix:/đường/dẫn.sock hoặc HOST:PORT (mặc định: $NIEMPHONG_SERVER)",
        "en": "niemphongd address: unix:/path.sock or HOST:PORT (default: $NIEMPHONG_SERVER)",
    },
    "help.identity": {
        "vi": "thư mục định danh chứa cert.pem, key.pem và ca.pem, hoặc tên một định danh "
        "trong $NIEMPHONG_IDENTITY_DIR (mặc định: $NIEMPHONG_IDENTITY)",
        "en": "identity folder with cert.pem, key.pem and ca.pem, or the name of an identity "
        "in $NIEMPHONG_IDENTITY_DIR (default: $NIEMPHONG_IDENTITY)",
    },
    "help.json": {
        "vi": "in kết quả ra stdout dạng JSON (khóa tiếng Anh)",
        "en": "print the result to stdout as JSON",
    },
    "help.force": {
        "vi": "ghi đè tệp --out nếu tệp đã có (chỉ ghi đè tệp thường)",
        "en": "overwrite the --out file if it exists (only a regular file is replaced)",
    },
    "help.envelope": {"vi": "tệp phong bì (tài liệu đã niêm phong)", "en": "envelope file (sealed document)"},
    "help.request_id": {"vi": "mã yêu cầu (32 chữ số hex)", "en": "request id (32 hex digits)"},
    "help.scan": {
        "vi": "niêm phong một tệp quét thành phong bì mã hóa",
        "en": "seal a scanned file into an encrypted envelope",
    },
    "help.scan.file": {
        "vi": "tệp tài liệu đã quét (PDF, TIFF, JPEG, ...)",
        "en": "scanned document file (PDF, TIFF, JPEG, ...)",
    },
    "help.scan.level": {
        "vi": "độ mật: mat (Mật) hoặc toi-mat (Tối mật); tuyet-mat (Tuyệt mật) luôn bị từ chối",
        "en": "classification level: mat (Mật) or toi-mat (Tối mật); tuyet-mat (Tuyệt mật) is always rejected",
    },
    "help.scan.doc_number": {
        "vi": "số tài liệu, ví dụ 1479/UBND-NC (1 đến 128 ký tự)",
        "en": "document number, e.g. 1479/UBND-NC (1 to 128 characters)",
    },
    "help.scan.issued": {
        "vi": "ngày ban hành: YYYY-MM-DD hoặc dd/mm/yyyy",
        "en": "issue date: YYYY-MM-DD or dd/mm/yyyy",
    },
    "help.scan.title": {"vi": "trích yếu (tối đa 512 ký tự)", "en": "title or subject (at most 512 characters)"},
    "help.scan.source_name": {
        "vi": "tên tệp gốc ghi vào phong bì (mặc định: tên của FILE; byte không phải UTF-8 thành �)",
        "en": "source file name recorded in the envelope (default: the name of FILE; bytes that are not "
        "UTF-8 become �)",
    },
    "help.scan.out": {"vi": "tệp phong bì sẽ tạo", "en": "envelope file to create"},
    "help.inspect": {
        "vi": "đọc thông tin ở phần đầu phong bì (chưa được xác thực)",
        "en": "show the facts in an envelope's header (not yet verified)",
    },
    "help.request": {
        "vi": "xin quyền mở một phong bì; in ra mã yêu cầu",
        "en": "ask for access to an envelope; prints the request id",
    },
    "help.request.purpose": {
        "vi": "mục đích khai thác (1 đến 2.000 ký tự)",
        "en": "purpose of use (1 to 2,000 characters)",
    },
    "help.approve": {"vi": "phê duyệt một yêu cầu đang chờ", "en": "approve a pending request"},
    "help.deny": {"vi": "từ chối một yêu cầu đang chờ", "en": "deny a pending request"},
    "help.deny.reason": {
        "vi": "lý do từ chối (1 đến 2.000 ký tự)",
        "en": "reason for the denial (1 to 2,000 characters)",
    },
    "help.pending": {"vi": "liệt kê các yêu cầu đang chờ duyệt", "en": "list pending requests"},
    "help.show": {"vi": "xem chi tiết một yêu cầu", "en": "show one request"},
    "help.view": {
        "vi": "mở phong bì và ghi bản rõ ra tệp",
        "en": "open an envelope and write the plaintext to a file",
    },
    "help.view.out": {
        "vi": "tệp bản rõ sẽ tạo (quyền 0600)",
        "en": "plaintext file to create (mode 0600)",
    },
    "help.view.request": {
        "vi": "dùng quyền mở của yêu cầu này (mặc định: quyền còn hiệu lực được cấp sớm nhất)",
        "en": "use the grant of this request (default: the oldest usable grant)",
    },
    "help.audit": {
        "vi": "kiểm tra và xuất nhật ký kiểm toán (vai trò auditor)",
        "en": "check and export the audit log (auditor role)",
    },
    "help.audit.verify": {
        "vi": "kiểm tra toàn bộ nhật ký kiểm toán: mã băm, liên kết giữa các mục và các mốc xác thực; "
        "mã thoát 5 nếu nhật ký đã bị sửa",
        "en": "check the whole audit log: hashes, links between entries and authenticated checkpoints; "
        "exit code 5 when it was altered",
    },
    "help.audit.export": {
        "vi": "xuất các bản ghi của nhật ký kiểm toán trong một khoảng thời gian",
        "en": "export the audit records of a time range",
    },
    "help.audit.since": {
        "vi": "từ thời điểm này (tính cả): YYYY-MM-DD hoặc dd/mm/yyyy (đầu ngày, giờ Việt Nam), "
        "hoặc YYYY-MM-DDTHH:MM:SS; mặc định: từ đầu nhật ký",
        "en": "from this time, inclusive: YYYY-MM-DD or dd/mm/yyyy (start of the day, Vietnam time), "
        "or YYYY-MM-DDTHH:MM:SS; default: the start of the log",
    },
    "help.audit.until": {
        "vi": "đến thời điểm này: một ngày thì tính trọn ngày đó, một thời điểm thì không tính chính nó; "
        "mặc định: đến hiện tại",
        "en": "until this time: a date includes that whole day, a date-time excludes itself; default: now",
    },
    "help.audit.format": {
        "vi": "định dạng: csv (tên cột tiếng Việt, mặc định) hoặc jsonl (mỗi dòng một bản ghi như trong nhật ký, "
        "khóa tiếng Anh)",
        "en": "format: csv (Vietnamese column names, the default) or jsonl (one record per line as stored "
        "in the log, English keys)",
    },
    "help.audit.out": {
        "vi": "tệp kết quả (quyền 0600); không có tùy chọn này thì ghi ra stdout",
        "en": "output file (mode 0600); without this option the export goes to stdout",
    },
    "help.audit.show": {
        "vi": "xem lịch sử của một tài liệu: niêm phong, yêu cầu khai thác, phê duyệt, từ chối và các lần mở",
        "en": "show the history of one document: its seal, access requests, approvals, denials and opens",
    },
    "help.audit.artefact": {
        "vi": "mã tài liệu (32 chữ số hex) hoặc tệp phong bì",
        "en": "artefact id (32 hex digits) or envelope file",
    },
    "help.dev": {"vi": "công cụ cho môi trường phát triển", "en": "development environment tools"},
    "help.dev.init": {
        "vi": "tạo token SoftHSM2, khóa theo độ mật, PKI thử nghiệm và cấu hình niemphongd trong DIR",
        "en": "create a SoftHSM2 token, per-level keys, a dev PKI and a niemphongd configuration in DIR",
    },
    "help.dev.dir": {"vi": "thư mục môi trường phát triển", "en": "development environment folder"},
    "help.dev.postgres": {
        "vi": "lưu trạng thái trong cơ sở dữ liệu PostgreSQL này (chuỗi kết nối libpq, không chứa mật khẩu) "
        "thay vì SQLite, để nhiều niemphongd dùng chung",
        "en": "keep state in this PostgreSQL database (a libpq connection string without a password) "
        "instead of SQLite, so that several niemphongd can share it",
    },
    "help.dev.join": {
        "vi": "tạo niemphongd thứ hai với socket riêng, dùng chung token, khóa, định danh và cơ sở dữ liệu "
        "của DIR đã tạo bằng --postgres",
        "en": "create a second niemphongd on its own socket that shares the token, keys, identities and "
        "database of a DIR made with --postgres",
    },
    "help.dev.add_identity": {
        "vi": "cấp thêm một định danh, ký bằng CA thử nghiệm của DIR",
        "en": "issue one more identity, signed by the dev CA of DIR",
    },
    "help.dev.name": {
        "vi": "tên định danh (CN của chứng chỉ)",
        "en": "identity name (certificate CN)",
    },
    "help.dev.role": {
        "vi": "vai trò của định danh, một hoặc nhiều vai trò cách nhau bởi dấu phẩy: {roles}",
        "en": "role of the identity, or several roles separated by commas: {roles}",
    },

    # Argument values.
    "arg.level_invalid": {
        "vi": "độ mật không hợp lệ: {value}; dùng mat, toi-mat hoặc tuyet-mat",
        "en": "invalid level: {value}; use mat, toi-mat or tuyet-mat",
    },
    "arg.date_invalid": {
        "vi": "ngày không hợp lệ: {value}; dùng YYYY-MM-DD (2025-05-14) hoặc dd/mm/yyyy (14/05/2025)",
        "en": "invalid date: {value}; use YYYY-MM-DD (2025-05-14) or dd/mm/yyyy (14/05/2025)",
    },
    "arg.out_empty": {
        "vi": "không được để trống; hãy cho đường dẫn tới tệp sẽ tạo",
        "en": "must not be empty; give the path of the file to create",
    },
    "arg.out_trailing_slash": {
        "vi": "{value} kết thúc bằng dấu /, tức là một thư mục; hãy cho đường dẫn tới một tệp",
        "en": "{value} ends with /, so it names a folder; give a file path",
    },
    "arg.empty": {"vi": "{field} không được để trống", "en": "{field} must not be empty"},
    "arg.request_id_invalid": {
        "vi": "mã yêu cầu không hợp lệ: {value}; mã yêu cầu gồm 32 chữ số hex, "
        "như lệnh niemphong request đã in ra",
        "en": "invalid request id: {value}; a request id is 32 hex digits, as printed by niemphong request",
    },
    "arg.time_invalid": {
        "vi": "thời điểm không hợp lệ: {value}; dùng YYYY-MM-DD, dd/mm/yyyy hoặc YYYY-MM-DDTHH:MM:SS",
        "en": "invalid time: {value}; use YYYY-MM-DD, dd/mm/yyyy or YYYY-MM-DDTHH:MM:SS",
    },

    # Field and role names used inside messages.
    "field.doc_number": {"vi": "số tài liệu (--doc-number)", "en": "document number (--doc-number)"},
    "field.issued_on": {"vi": "ngày ban hành (--issued)", "en": "issue date (--issued)"},
    "field.title": {"vi": "trích yếu (--title)", "en": "title (--title)"},
    "field.source_name": {"vi": "tên tệp gốc (--source-name)", "en": "source file name (--source-name)"},
    "field.purpose": {"vi": "mục đích khai thác (--purpose)", "en": "purpose (--purpose)"},
    "field.reason": {"vi": "lý do (--reason)", "en": "reason (--reason)"},
    "field.artefact_id": {"vi": "mã tài liệu", "en": "artefact id"},
    "field.request_id": {"vi": "mã yêu cầu", "en": "request id"},
    "field.level": {"vi": "độ mật (--level)", "en": "level (--level)"},
    "field.since": {"vi": "thời điểm bắt đầu (--since)", "en": "start time (--since)"},
    "field.until": {"vi": "thời điểm kết thúc (--until)", "en": "end time (--until)"},
    "role.scanner": {"vi": "người số hóa (scanner)", "en": "scanner"},
    "role.viewer": {"vi": "người khai thác (viewer)", "en": "viewer"},
    "role.approver": {"vi": "người phê duyệt (approver)", "en": "approver"},
    "role.custodian": {"vi": "người quản lý khóa (custodian)", "en": "custodian"},
    "role.auditor": {"vi": "người kiểm tra (auditor)", "en": "auditor"},
    "role.operator": {"vi": "người vận hành (operator)", "en": "operator"},
    "level.mat": {"vi": "Mật", "en": "Confidential (Mật)"},
    "level.toi_mat": {"vi": "Tối mật", "en": "Secret (Tối mật)"},
    "level.tuyet_mat": {"vi": "Tuyệt mật", "en": "Top Secret (Tuyệt mật)"},
    "level.unspecified": {"vi": "(chưa xác định)", "en": "(unspecified)"},
    "state.pending": {"vi": "đang chờ duyệt", "en": "pending"},
    "state.approved": {"vi": "đã được phê duyệt", "en": "approved"},
    "state.denied": {"vi": "đã bị từ chối", "en": "denied"},
    "state.unspecified": {"vi": "(không rõ)", "en": "(unknown)"},

    # Local usage errors (exit code 2).
    "usage.no_server": {
        "vi": "Chưa chỉ định niemphongd. Dùng --server hoặc đặt NIEMPHONG_SERVER "
        "(sau niemphong dev init DIR, chạy . DIR/client.env).",
        "en": "No niemphongd address. Use --server or set NIEMPHONG_SERVER "
        "(after niemphong dev init DIR, run . DIR/client.env).",
    },
    "usage.bad_server": {
        "vi": "Địa chỉ niemphongd không hợp lệ: {value}. Dùng unix:/đường/dẫn/tuyệt/đối.sock hoặc HOST:PORT.",
        "en": "Invalid niemphongd address: {value}. Use unix:/absolute/path.sock or HOST:PORT.",
    },
    "usage.socket_too_long": {
        "vi": "Đường dẫn socket {path} dài {length} byte, vượt giới hạn {max} byte của socket Unix.",
        "en": "Socket path {path} is {length} bytes long, over the Unix socket limit of {max} bytes.",
    },
    "usage.no_identity": {
        "vi": "Chưa chỉ định định danh. Dùng --identity THƯ_MỤC hoặc đặt NIEMPHONG_IDENTITY.",
        "en": "No identity. Use --identity FOLDER or set NIEMPHONG_IDENTITY.",
    },
    "usage.identity_file_missing": {
        "vi": "Thiếu tệp định danh {path}. Thư mục định danh phải có cert.pem, key.pem và ca.pem.",
        "en": "Identity file {path} is missing. An identity folder must contain cert.pem, key.pem and ca.pem.",
    },
    "usage.identity_unreadable": {
        "vi": "Không đọc được tệp định danh {path}: {error}",
        "en": "Cannot read identity file {path}: {error}",
    },
    "warning.key_permissions": {
        "vi": "tệp khóa {path} có quyền {mode}, người khác cũng đọc được; hãy chạy chmod 600 {path}",
        "en": "key file {path} has mode {mode}, so other users can read it; run chmod 600 {path}",
    },
    "usage.input_missing": {"vi": "Không tìm thấy tệp {path}.", "en": "File {path} not found."},
    "usage.issued_future": {
        "vi": "Ngày ban hành {value} sau ngày hôm nay ({today}). Kiểm tra lại ngày ghi trên văn bản.",
        "en": "The issue date {value} is after today ({today}). Check the date written on the document.",
    },
    "usage.name_ambiguous": {
        "vi": "Có {count} tệp hoặc thư mục cùng tên {path}, chỉ khác nhau ở cách mã hóa dấu tiếng Việt (NFC và NFD), "
        "nên không biết nên dùng tệp nào. Hãy đổi tên hoặc chuyển bớt để chỉ còn một.",
        "en": "{count} files or folders are named {path}, differing only in how the Vietnamese accents are encoded "
        "(NFC and NFD), so it is unclear which one to use. Rename or move all but one.",
    },
    "usage.input_not_file": {"vi": "{path} không phải là tệp thường.", "en": "{path} is not a regular file."},
    "usage.input_unreadable": {
        "vi": "Không đọc được tệp {path}: {error}",
        "en": "Cannot read file {path}: {error}",
    },
    "usage.out_exists": {
        "vi": "Tệp {path} đã có. Dùng --force để ghi đè, hoặc chọn tên khác.",
        "en": "File {path} already exists. Use --force to overwrite it, or choose another name.",
    },
    "usage.out_is_input": {
        "vi": "Tệp kết quả {path} trùng với tệp đầu vào; hãy chọn tên khác cho --out.",
        "en": "Output file {path} is the input file; choose another name for --out.",
    },
    "usage.out_is_dir": {
        "vi": "{path} là thư mục; --out phải là đường dẫn tới một tệp.",
        "en": "{path} is a folder; --out must be a file path.",
    },
    "usage.out_not_regular": {
        "vi": "{path} là {kind}, không phải tệp thường. --out chỉ ghi đè tệp thường, kể cả khi có --force; "
        "hãy chọn tên khác cho --out.",
        "en": "{path} is a {kind}, not a regular file. --out replaces only regular files, even with --force; "
        "choose another name for --out.",
    },
    "file_kind.symlink": {"vi": "liên kết tượng trưng (symlink)", "en": "symbolic link"},
    "file_kind.fifo": {"vi": "ống có tên (FIFO)", "en": "FIFO (named pipe)"},
    "file_kind.character_device": {"vi": "thiết bị ký tự", "en": "character device"},
    "file_kind.block_device": {"vi": "thiết bị khối", "en": "block device"},
    "file_kind.socket": {"vi": "socket", "en": "socket"},
    "file_kind.other": {"vi": "tệp đặc biệt", "en": "special file"},
    "usage.out_dir_missing": {
        "vi": "Thư mục {path} không tồn tại.",
        "en": "Folder {path} does not exist.",
    },
    "envelope.not_envelope": {
        "vi": "{path} không phải là phong bì Niêm Phong: tệp không bắt đầu bằng dấu hiệu nhận dạng của phong bì. "
        "Hãy kiểm tra lại tên tệp; lệnh này cần tệp do niemphong scan tạo ra, thường có đuôi .npe.",
        "en": "{path} is not a Niêm Phong envelope: it does not start with the envelope signature. "
        "Check the file name; this command needs a file made by niemphong scan, usually named *.npe.",
    },
    "error.io": {
        "vi": "Lỗi đọc/ghi {path}: {error}",
        "en": "Input/output error on {path}: {error}",
    },
    "error.write_failed": {
        "vi": "Không ghi được {path}: {error}. Không có tệp nào được giữ lại.",
        "en": "Cannot write {path}: {error}. No file was kept.",
    },

    # Connection and transport failures.
    "error.connect": {
        "vi": "Không kết nối được tới niemphongd tại {server}. Kiểm tra niemphongd đã chạy chưa "
        "(niemphongd --config DIR/niemphongd.toml), địa chỉ --server/NIEMPHONG_SERVER và "
        "định danh --identity. Chi tiết: {detail}",
        "en": "Cannot connect to niemphongd at {server}. Check that niemphongd is running "
        "(niemphongd --config DIR/niemphongd.toml), the --server/NIEMPHONG_SERVER address and "
        "the --identity. Detail: {detail}",
    },
    "error.client_certificate_rejected": {
        "vi": "niemphongd tại {server} không chấp nhận chứng thư của định danh đang dùng: nó đóng kết nối ngay khi "
        "kiểm tra chứng thư. Chứng thư có thể do một CA khác cấp, đã hết hạn, hoặc không phải chứng thư người dùng "
        "(ví dụ chứng thư của máy chủ). Kiểm tra thư mục định danh (--identity hoặc NIEMPHONG_IDENTITY), hoặc hỏi "
        "cán bộ phụ trách bảo mật để được cấp chứng thư.",
        "en": "niemphongd at {server} did not accept the certificate of the identity in use: it closed the connection "
        "as soon as it checked the certificate. The certificate may come from another CA, have expired, or not be a "
        "user certificate (the server's own, for example). Check the identity folder (--identity or "
        "NIEMPHONG_IDENTITY), or ask the security officer for a certificate.",
    },
    "error.server_certificate_rejected": {
        "vi": "Không xác thực được chứng thư của niemphongd tại {server}: chứng thư không do CA trong ca.pem của định "
        "danh đang dùng cấp, hoặc không mang tên máy chủ đã chờ đợi. Kiểm tra thư mục định danh (--identity hoặc "
        "NIEMPHONG_IDENTITY) và NIEMPHONG_SERVER_NAME, hoặc hỏi cán bộ phụ trách bảo mật.",
        "en": "Cannot verify the certificate of niemphongd at {server}: it was not issued by the CA in the identity's "
        "ca.pem, or does not carry the expected server name. Check the identity folder (--identity or "
        "NIEMPHONG_IDENTITY) and NIEMPHONG_SERVER_NAME, or ask the security officer.",
    },
    "error.connection_lost": {
        "vi": "Mất kết nối tới niemphongd tại {server} khi đang truyền dữ liệu, nên không có tệp kết quả nào "
        "được giữ lại. Kiểm tra niemphongd còn chạy không (nhật ký của niemphongd cho biết lý do), rồi chạy "
        "lại lệnh. Chi tiết: {detail}",
        "en": "The connection to niemphongd at {server} was lost during the transfer, so no output file was "
        "kept. Check that niemphongd is still running (its log says why it stopped), then run the command "
        "again. Detail: {detail}",
    },
    "error.deadline": {
        "vi": "niemphongd tại {server} không trả lời trong thời hạn cho phép. Thử lại sau.",
        "en": "niemphongd at {server} did not respond before the deadline. Try again later.",
    },
    "error.bad_stream": {
        "vi": "niemphongd gửi luồng dữ liệu sai giao thức (thiếu bản tóm tắt hoặc có dữ liệu sau bản tóm tắt), "
        "nên kết quả không được giữ lại.",
        "en": "niemphongd sent a stream that breaks the protocol (no summary, or data after the summary), "
        "so the result was not kept.",
    },
    "error.sha256_mismatch": {
        "vi": "Phong bì nhận được không khớp mã SHA-256 mà niemphongd báo. Không có tệp nào được ghi.",
        "en": "The envelope received does not match the SHA-256 that niemphongd reported. No file was written.",
    },
    "error.size_mismatch": {
        "vi": "Đã nhận {received} byte nhưng niemphongd báo {reported} byte. Không có tệp nào được ghi.",
        "en": "Received {received} bytes but niemphongd reported {reported} bytes. No file was written.",
    },

    # Errors from niemphongd, by ErrorInfo reason.
    "reason.LEVEL_NEVER_DIGITIZED": {
        "vi": "Tài liệu độ Tuyệt mật không được số hóa. Theo Luật Bảo vệ bí mật nhà nước số "
        "29/2018/QH14 và công văn hướng dẫn số hóa tài liệu BMNN của UBND tỉnh Đắk Lắk (tháng 5/2025), "
        "tài liệu BMNN độ Tuyệt mật phải được tách riêng và không số hóa, kể cả khi đã quá 30 năm. "
        "Hãy giữ tài liệu này ở dạng giấy. Chỉ khi tài liệu đã được giải mật và đóng dấu \"Giải mật\" "
        "thì mới số hóa như tài liệu thường.",
        "en": "Tuyệt mật (Top Secret) documents are never digitized. Under the Law on Protection of "
        "State Secrets No. 29/2018/QH14 and the guidance of the People's Committee of Đắk Lắk province "
        "on digitizing state-secret documents (May 2025), Tuyệt mật documents are set apart and not "
        "digitized, even after 30 years. Keep this document on paper. Only once it has been declassified "
        "and stamped \"Giải mật\" may it be digitized as an ordinary document.",
    },
    "reason.LEVEL_MISSING": {
        "vi": "Chưa có độ mật. Dùng --level mat hoặc --level toi-mat.",
        "en": "The level is missing. Use --level mat or --level toi-mat.",
    },
    "reason.INVALID_FIELD": {
        "vi": "Giá trị {field} không hợp lệ. Kiểm tra lại rồi thử lại.",
        "en": "The value of {field} is invalid. Correct it and try again.",
    },
    "reason.FIELD_TOO_LONG": {
        "vi": "{field} quá dài: tối đa {max} ký tự.",
        "en": "{field} is too long: at most {max} characters.",
    },
    "reason.PROTOCOL_VIOLATION": {
        "vi": "niemphongd từ chối luồng dữ liệu vì sai giao thức. Hãy dùng niemphong cùng phiên bản với niemphongd.",
        "en": "niemphongd rejected the stream as a protocol violation. Use a niemphong version that matches niemphongd.",
    },
    "reason.ROLE_REQUIRED": {
        "vi": "Thao tác này cần vai trò {required_role}, nhưng định danh của bạn chỉ có vai trò: {role}. "
        "Hãy dùng định danh phù hợp (--identity).",
        "en": "This operation needs the role {required_role}, but your identity has only the role(s): {role}. "
        "Use a suitable identity (--identity).",
    },
    "reason.UNKNOWN_IDENTITY": {
        "vi": "niemphongd không nhận ra định danh của bạn. Hãy liên hệ người quản trị để được cấp định danh.",
        "en": "niemphongd does not recognise your identity. Ask the administrator for an identity.",
    },
    "reason.NOT_APPROVED": {
        "vi": "Bạn chưa được phép mở tài liệu này: không có yêu cầu nào của bạn cho tài liệu này đã được "
        "phê duyệt, còn hạn và còn lượt mở. Yêu cầu có thể vẫn đang chờ duyệt hoặc đã bị từ chối, hoặc quyền "
        "mở đã dùng hết lượt hay đã hết hạn; xem trạng thái bằng niemphong show MÃ_YÊU_CẦU. Khi cần, gửi "
        "yêu cầu mới bằng niemphong request PHONG_BÌ --purpose \"...\" rồi chờ người phê duyệt.",
        "en": "You may not open this document now: none of your requests for it is approved, unexpired "
        "and with opens left. A request may still be pending or may have been denied, or its grant may be "
        "used up or expired; see its state with niemphong show REQUEST_ID. If needed, send a new request "
        "with niemphong request ENVELOPE --purpose \"...\" and wait for approval.",
    },
    "reason.SELF_APPROVAL": {
        "vi": "Bạn không được tự phê duyệt yêu cầu của chính mình; một người phê duyệt khác phải làm việc này.",
        "en": "You may not approve your own request; another approver must do it.",
    },
    "reason.NOT_YOUR_REQUEST": {
        "vi": "Yêu cầu này không phải của bạn. Người khai thác chỉ xem và dùng được yêu cầu do chính mình gửi.",
        "en": "This request is not yours. A viewer can see and use only the requests they sent.",
    },
    "reason.ALREADY_APPROVED": {
        "vi": "Bạn đã phê duyệt yêu cầu này rồi. Một người phê duyệt nhiều lần vẫn chỉ tính là một phê duyệt; "
        "phê duyệt còn thiếu phải do người khác thực hiện.",
        "en": "You already approved this request. Approving twice still counts once; "
        "any approval still missing must come from someone else.",
    },
    "reason.REQUEST_NOT_PENDING": {
        "vi": "Yêu cầu này không còn chờ duyệt (đã được phê duyệt hoặc đã bị từ chối). "
        "Xem trạng thái bằng niemphong show MÃ_YÊU_CẦU.",
        "en": "This request is no longer pending (it was approved or denied). "
        "See its state with niemphong show REQUEST_ID.",
    },
    "reason.TOO_MANY_PENDING": {
        "vi": "Bạn đã có {max} yêu cầu đang chờ duyệt, là mức tối đa. Hãy chờ người phê duyệt quyết định "
        "một số yêu cầu (xem danh sách bằng niemphong pending) rồi gửi lại.",
        "en": "You already have {max} pending requests, the maximum. Wait until approvers decide some of "
        "them (list them with niemphong pending), then ask again.",
    },
    "reason.TOO_MANY_STREAMS": {
        "vi": "niemphongd đang bận: định danh của bạn đã có {max} lượt truyền dữ liệu đang chạy, hoặc "
        "niemphongd đã hết chỗ cho lượt mới. Chờ các lượt đang chạy xong rồi thử lại.",
        "en": "niemphongd is busy: your identity already has {max} transfers in progress, or niemphongd "
        "has no room for another. Wait for the running transfers to finish, then try again.",
    },
    "reason.REQUEST_NOT_FOUND": {
        "vi": "Không tìm thấy yêu cầu này. Kiểm tra mã yêu cầu, ví dụ bằng niemphong pending.",
        "en": "Request not found. Check the request id, for example with niemphong pending.",
    },
    "reason.ARTEFACT_NOT_FOUND": {
        "vi": "niemphongd không có tài liệu này trong sổ đăng ký. Phong bì có thể do một niemphongd khác niêm phong.",
        "en": "niemphongd has no record of this document. Another niemphongd may have sealed the envelope.",
    },
    "reason.INTEGRITY_FAILURE": {
        "vi": "Phong bì bị hỏng hoặc đã bị sửa đổi: kiểm tra toàn vẹn thất bại. Không có nội dung nào được ghi ra. "
        "Nếu nghi ngờ có người can thiệp, hãy báo ngay cho người đứng đầu cơ quan.",
        "en": "The envelope is damaged or was altered: the integrity check failed. No content was written. "
        "If you suspect tampering, report it to the head of the agency at once.",
    },
    "reason.TOKEN_UNAVAILABLE": {
        "vi": "niemphongd không truy cập được thiết bị giữ khóa (token/HSM). Thử lại sau hoặc báo người vận hành.",
        "en": "niemphongd cannot reach the key token (token/HSM). Try again later or tell the operator.",
    },
    "reason.KEY_UNAVAILABLE": {
        "vi": "Khóa cần cho tài liệu này không có trên token. Hãy báo người quản lý khóa (custodian).",
        "en": "The key this document needs is not on the token. Tell the key custodian.",
    },
    "reason.AUDIT_UNAVAILABLE": {
        "vi": "niemphongd không ghi được nhật ký kiểm toán nên đã từ chối thao tác và không trả ra dữ liệu nào. "
        "Báo người vận hành kiểm tra ổ đĩa hoặc token giữ nhật ký; thao tác sẽ thực hiện được khi nhật ký "
        "ghi được trở lại, không cần khởi động lại niemphongd.",
        "en": "niemphongd cannot write its audit log, so it refused the operation and released nothing. "
        "Tell the operator to check the disk or token the log depends on; the operation works again once "
        "the log can be written, without restarting niemphongd.",
    },
    "reason.STATE_UNAVAILABLE": {
        "vi": "niemphongd không kết nối hoặc không ghi được cơ sở dữ liệu trạng thái (PostgreSQL không trả lời, "
        "hoặc ổ đĩa chứa cơ sở dữ liệu đầy, chỉ đọc hay hỏng) nên đã không thực hiện thao tác và không có gì được lưu. "
        "Thử lại sau ít phút hoặc qua máy chủ niemphongd khác; nếu vẫn lỗi, báo người vận hành kiểm tra cơ sở dữ liệu "
        "và ổ đĩa của nó. Không cần khởi động lại niemphongd.",
        "en": "niemphongd cannot reach or cannot write its state database (PostgreSQL does not answer, or the disk "
        "that holds the database is full, read-only or failing), so it did not carry out the operation and nothing "
        "was saved. Try again in a few minutes or through another niemphongd server; if it still fails, tell the "
        "operator to check the database and its disk. niemphongd need not be restarted.",
    },
    "reason.DAEMON_STOPPING": {
        "vi": "niemphongd đang dừng (khởi động lại hoặc bảo trì) nên đã ngắt yêu cầu này trước khi xong; không có gì được lưu. Hãy chạy lại lệnh sau ít phút.",
        "en": "niemphongd is stopping (restart or maintenance) and ended this request before it finished; nothing was saved. Run the command again in a few minutes.",
    },
    "reason.INTERNAL": {
        "vi": "niemphongd gặp lỗi nội bộ. Thử lại; nếu lỗi lặp lại, báo người vận hành kèm thời điểm xảy ra.",
        "en": "niemphongd had an internal error. Try again; if it repeats, tell the operator when it happened.",
    },
    "reason.KEY_NOT_FOUND": {
        "vi": "Khóa {key_id} không có phiên bản {version}. Xem các phiên bản bằng niemphong keys list.",
        "en": "Key {key_id} has no version {version}. See the versions with niemphong keys list.",
    },
    "reason.KEY_STATE_CONFLICT": {
        "vi": "Không thể {operation} lúc này: phiên bản khóa đang ở trạng thái \"{state}\". "
        "Phiên bản khóa chỉ chuyển theo một chiều: đang dùng → ngừng niêm phong → ngừng mở → đã hủy. "
        "Xem trạng thái bằng niemphong keys list.",
        "en": "Cannot {operation} now: the key version is in state \"{state}\". "
        "Key versions move one way only: active → retired for sealing → retired for opening → destroyed. "
        "See the states with niemphong keys list.",
    },
    "reason.KEY_STILL_NEEDED": {
        "vi": "Chưa thể hủy khóa {key_id} phiên bản {version}: sổ đăng ký còn {artefacts} tài liệu dùng phiên bản này. "
        "Hãy bọc lại các phong bì đó sang phiên bản mới (niemphong rewrap THƯ_MỤC) trước.",
        "en": "Key {key_id} version {version} cannot be destroyed yet: the registry still records {artefacts} "
        "documents under it. Rewrap those envelopes to the new version first (niemphong rewrap FOLDER).",
    },
    "reason.KEY_RETIRED": {
        "vi": "Phong bì này dùng khóa {key_id} phiên bản {version}, phiên bản đó đã {state}, nên không mở được nữa. "
        "Hãy nhờ người quản lý khóa bọc lại phong bì sang phiên bản mới (niemphong rewrap).",
        "en": "This envelope uses key {key_id} version {version}, which is {state}, so it no longer opens. "
        "Ask a key custodian to rewrap the envelope to the new version (niemphong rewrap).",
    },
    "reason.KEY_CHANGE_NOT_FOUND": {
        "vi": "Không tìm thấy đề xuất thay đổi khóa này. Xem các đề xuất đang chờ bằng niemphong keys pending.",
        "en": "Key change not found. See the pending changes with niemphong keys pending.",
    },
    "reason.KEY_CHANGE_NOT_PENDING": {
        "vi": "Đề xuất thay đổi khóa này không còn chờ xác nhận (trạng thái: {state}). "
        "Đề xuất hết hạn sau 24 giờ; khi cần, hãy đề xuất lại.",
        "en": "This key change is no longer waiting for confirmation (state: {state}). "
        "Changes expire after 24 hours; propose it again if it is still needed.",
    },
    "reason.KEY_CHANGE_PENDING": {
        "vi": "Khóa của độ mật này đang có đề xuất thay đổi {change_id} chờ xác nhận. "
        "Hãy xác nhận hoặc từ chối đề xuất đó trước (niemphong keys confirm / keys reject).",
        "en": "A change {change_id} of this level's key is still waiting for confirmation. "
        "Confirm or reject it first (niemphong keys confirm / keys reject).",
    },
    "reason.ALREADY_CONFIRMED": {
        "vi": "Bạn đã xác nhận việc này rồi (người đề xuất được tính là người xác nhận đầu tiên). "
        "Xác nhận còn thiếu phải do một người quản lý khóa khác thực hiện.",
        "en": "You have already confirmed this (the proposer counts as the first to confirm). "
        "The confirmation still missing must come from another key custodian.",
    },
    "reason.RECOVERY_NOT_CONFIGURED": {
        "vi": "niemphongd chưa được cấu hình token khôi phục (mục [recovery] trong niemphongd.toml). "
        "Xem docs/key-ceremony.vi.md.",
        "en": "niemphongd has no recovery token configured (section [recovery] of niemphongd.toml). "
        "See docs/key-ceremony.md.",
    },
    "reason.RECOVERY_NOT_ACTIVE": {
        "vi": "Chưa có phiên khôi phục nào đang mở. Hai người quản lý khóa phải mở phiên trước: "
        "niemphong recover start rồi niemphong recover confirm.",
        "en": "No recovery session is active. Two key custodians must open one first: "
        "niemphong recover start, then niemphong recover confirm.",
    },
    "reason.RECOVERY_IN_PROGRESS": {
        "vi": "Đã có phiên khôi phục {session_id} (trạng thái: {state}). Mỗi lúc chỉ có một phiên; "
        "xem bằng niemphong recover status, kết thúc bằng niemphong recover end.",
        "en": "Recovery session {session_id} already exists (state: {state}). There is one session at a time; "
        "see it with niemphong recover status and end it with niemphong recover end.",
    },
    "reason.RECOVERY_NOT_PENDING": {
        "vi": "Phiên khôi phục này không còn chờ xác nhận (trạng thái: {state}). "
        "Phiên chờ hết hạn sau 15 phút; khi cần, hãy bắt đầu lại bằng niemphong recover start.",
        "en": "This recovery session is no longer waiting for confirmation (state: {state}). "
        "A pending session expires after 15 minutes; start again with niemphong recover start.",
    },
    "reason.RECOVERY_LOGIN_FAILED": {
        "vi": "Hai phần mã PIN không mở được token khôi phục, nên phiên khôi phục đã bị hủy. "
        "Hãy kiểm tra mỗi người dùng đúng phần mã PIN của mình rồi bắt đầu lại. "
        "Token có thể bị khóa sau nhiều lần nhập sai.",
        "en": "The two PIN shares did not open the recovery token, so the recovery session was cancelled. "
        "Check that each custodian used their own share, then start again. "
        "The token may lock after repeated wrong PINs.",
    },
    "reason.REWRAP_UNSUPPORTED": {
        "vi": "Phong bì này được niêm phong ở chế độ mã hóa trong token, nên không có khóa khôi phục để bọc lại. "
        "Tệp giữ nguyên; hãy bọc lại bằng khóa của token (niemphong rewrap, không dùng niemphong recover rewrap).",
        "en": "This envelope was sealed in in-token mode, so it has no recovery slot to rewrap with. "
        "The file is left as it was; rewrap it with the token's own keys (niemphong rewrap, not niemphong recover "
        "rewrap).",
    },

    # Local spool mode: errors from niemphongd and from the client's own checks.
    "reason.SPOOL_DISABLED": {
        "vi": "niemphongd này chưa bật chế độ spool cục bộ (mục [spool] trong cấu hình). "
        "Bỏ --spool để gửi tệp qua kết nối, hoặc nhờ người vận hành bật chế độ này.",
        "en": "Local spool mode is not enabled on this niemphongd (the [spool] section of its configuration). "
        "Leave out --spool to send the file over the connection, or ask the operator to enable it.",
    },
    "reason.SPOOL_PATH_INVALID": {
        "vi": "Đường dẫn {field} không hợp lệ trong thư mục spool: phải là đường dẫn tương đối, không có "
        "thành phần rỗng, \".\" hay \"..\", và không trỏ tới thư mục hay tới chính tệp đầu vào.",
        "en": "The {field} path is not valid in the spool directory: it must be relative, with no empty, "
        "\".\" or \"..\" components, and must not name a folder or the input file itself.",
    },
    "reason.SPOOL_FILE_NOT_FOUND": {
        "vi": "Không tìm thấy {field} trong thư mục spool của bạn trên máy chạy niemphongd.",
        "en": "{field} was not found in your spool directory on the niemphongd host.",
    },
    "reason.SPOOL_FILE_REJECTED": {
        "vi": "niemphongd từ chối {field}: {problem}.",
        "en": "niemphongd rejected {field}: {problem}.",
    },
    "reason.SPOOL_OUTPUT_EXISTS": {
        "vi": "{field} đã có trong thư mục spool. Dùng --force để ghi đè, hoặc chọn tên khác.",
        "en": "{field} already exists in the spool directory. Use --force to overwrite it, or choose another name.",
    },
    "reason.SPOOL_IO_FAILED": {
        "vi": "niemphongd không đọc/ghi được tệp trong thư mục spool ({problem}). Không có tệp kết quả nào "
        "được giữ lại. Kiểm tra dung lượng đĩa và quyền của thư mục, hoặc báo người vận hành.",
        "en": "niemphongd could not read or write a file in the spool directory ({problem}). No output file "
        "was kept. Check the free disk space and the folder's permissions, or tell the operator.",
    },
    "spool.problem.symlink": {
        "vi": "đường dẫn có liên kết tượng trưng (symlink), niemphongd không đi theo liên kết",
        "en": "the path has a symbolic link, which niemphongd does not follow",
    },
    "spool.problem.not_regular": {"vi": "không phải tệp thường", "en": "it is not a regular file"},
    "spool.problem.owner": {
        "vi": "tệp không thuộc sở hữu của chủ thư mục spool",
        "en": "the file is not owned by the owner of the spool directory",
    },
    "spool.problem.hard_links": {
        "vi": "tệp có nhiều hơn một liên kết cứng (hard link)",
        "en": "the file has more than one hard link",
    },
    "spool.problem.writable_by_others": {
        "vi": "một thư mục trên đường dẫn cho phép mọi người ghi",
        "en": "a folder on the path is writable by everyone",
    },
    "spool.problem.changed": {
        "vi": "tệp bị thay đổi trong lúc đang đọc; hãy chờ tệp quét xong rồi thử lại",
        "en": "the file changed while it was read; wait until the scan is complete and try again",
    },
    "field.source_path": {"vi": "tệp nguồn", "en": "the source file"},
    "field.envelope_path": {"vi": "tệp phong bì", "en": "the envelope file"},
    "field.output_path": {"vi": "tệp kết quả (--out)", "en": "the output file (--out)"},
    "help.spool": {
        "vi": "thư mục spool của định danh này trên máy chạy niemphongd; niemphongd tự đọc tệp đầu vào và "
        "tự ghi kết quả trong thư mục đó, nên dữ liệu không đi qua kết nối (chỉ dùng trên cùng máy)",
        "en": "this identity's spool directory on the niemphongd host; niemphongd reads the input and writes "
        "the output there itself, so the data does not cross the connection (same host only)",
    },
    "usage.spool_outside": {
        "vi": "{path} không nằm trong thư mục spool {spool}. Với --spool, tệp đầu vào và --out phải ở trong thư mục đó.",
        "en": "{path} is not inside the spool directory {spool}. With --spool, the input and --out must be inside it.",
    },
    "usage.spool_remove_source": {
        "vi": "Chưa dùng được --remove-source cùng --spool. Niêm phong bằng --spool, rồi kiểm tra phong bì và tự xóa tệp quét.",
        "en": "--remove-source cannot be used with --spool yet. Seal with --spool, then verify the envelope and remove the scan yourself.",
    },
    "usage.spool_missing": {
        "vi": "Thư mục spool {spool} không tồn tại.",
        "en": "Spool directory {spool} does not exist.",
    },

    # Errors from niemphongd without a known reason, by gRPC status code.
    "code.UNAUTHENTICATED": {
        "vi": "niemphongd không xác thực được bạn. Kiểm tra định danh (--identity) có được cấp bởi CA của niemphongd.",
        "en": "niemphongd could not authenticate you. Check that your identity (--identity) comes from niemphongd's CA.",
    },
    "code.PERMISSION_DENIED": {
        "vi": "niemphongd từ chối: bạn không có quyền thực hiện thao tác này.",
        "en": "niemphongd denied the operation: you are not authorized to do this.",
    },
    "code.INVALID_ARGUMENT": {
        "vi": "niemphongd từ chối yêu cầu vì có giá trị không hợp lệ.",
        "en": "niemphongd rejected the request because a value is invalid.",
    },
    "code.FAILED_PRECONDITION": {
        "vi": "niemphongd từ chối thao tác theo chính sách.",
        "en": "niemphongd rejected the operation by policy.",
    },
    "code.NOT_FOUND": {
        "vi": "niemphongd không tìm thấy đối tượng được yêu cầu.",
        "en": "niemphongd did not find what was requested.",
    },
    "code.OTHER": {
        "vi": "niemphongd trả về lỗi {code}.",
        "en": "niemphongd returned error {code}.",
    },

    # scan
    "scan.tuyet_mat_warning": {
        "vi": "tài liệu độ Tuyệt mật không được số hóa; yêu cầu vẫn được gửi để niemphongd quyết định và ghi nhật ký.",
        "en": "Tuyệt mật documents are not digitized; the request is still sent so that niemphongd decides and logs it.",
    },
    "scan.tuyet_mat_file_hint": {
        "vi": "Tệp quét {path} chứa nội dung Tuyệt mật: không lưu giữ, sao chép hay gửi tệp này; "
        "báo người phụ trách bảo vệ bí mật nhà nước của cơ quan để xử lý.",
        "en": "The scanned file {path} contains Tuyệt mật content: do not keep, copy or send it; "
        "tell the person in charge of state-secret protection in your agency.",
    },
    "scan.protection_expired": {
        "vi": "tài liệu độ {level} ban hành ngày {issued} đã quá thời hạn bảo vệ {years} năm "
        "(Điều 19 Luật Bảo vệ bí mật nhà nước số 29/2018/QH14). Nếu thời hạn không được gia hạn, "
        "tài liệu được giải mật và số hóa như tài liệu thường; hãy kiểm tra trước khi niêm phong.",
        "en": "this {level} document issued on {issued} is past its {years}-year protection period "
        "(Article 19 of the Law on Protection of State Secrets No. 29/2018/QH14). Unless the period was "
        "extended, it is declassified and digitized as an ordinary document; check before sealing it.",
    },
    "scan.seal_not_kept": {
        "vi": "niemphongd đã ghi nhận lần niêm phong này (mã {artefact_id}) nhưng phong bì không được giữ lại, nên "
        "lần niêm phong đó đã được báo hủy bỏ và không được tính là đã số hóa. Chạy lại lệnh là an toàn.",
        "en": "niemphongd recorded this seal (artefact {artefact_id}) but the envelope was not kept, so that seal "
        "was reported abandoned and does not count as digitized. Running the command again is safe.",
    },
    "scan.seal_not_kept_unreported": {
        "vi": "niemphongd đã ghi nhận lần niêm phong này (mã {artefact_id}) nhưng phong bì không được giữ lại, và "
        "không báo được điều đó cho niemphongd. Lần niêm phong đó vẫn ở trạng thái chưa xác nhận và không được "
        "tính là đã số hóa. Chạy lại lệnh là an toàn.",
        "en": "niemphongd recorded this seal (artefact {artefact_id}) but the envelope was not kept, and "
        "niemphongd could not be told. That seal stays unconfirmed and does not count as digitized. Running the "
        "command again is safe.",
    },
    "scan.confirm_failed": {
        "vi": "Phong bì {path} đã được ghi đủ, nhưng niemphongd chưa ghi nhận xác nhận, nên lần niêm phong {artefact_id} "
        "chưa được tính là đã số hóa. Với quét lô, chạy lại lệnh để xác nhận phong bì này.",
        "en": "The envelope {path} is written in full, but niemphongd did not record the confirmation, so seal "
        "{artefact_id} does not count as digitized yet. For a batch scan, run the command again to confirm this "
        "envelope.",
    },
    "scan.done": {
        "vi": "Đã niêm phong {source}: độ {level}, số {doc_number}; bản rõ {plaintext}, phong bì {envelope} → {out}",
        "en": "Sealed {source}: {level}, number {doc_number}; plaintext {plaintext}, envelope {envelope} → {out}",
    },

    "scan.source_name_characters": {
        "vi": "niemphongd từ chối tên tệp gốc \"{value}\" vì tên này chứa ký tự điều khiển hoặc ký tự "
        "định dạng: {characters}. Đặt tên khác bằng --source-name TÊN, ví dụ --source-name bao-cao.pdf.",
        "en": "niemphongd rejected the source file name \"{value}\" because it contains control or format "
        "characters: {characters}. Set another name with --source-name NAME, for example "
        "--source-name report.pdf.",
    },
    "scan.source_name_invalid": {
        "vi": "niemphongd từ chối tên tệp gốc \"{value}\": tên tệp gốc phải là một tên tệp, không chứa / "
        "hay \\, tối đa 255 ký tự. Đặt tên khác bằng --source-name TÊN.",
        "en": "niemphongd rejected the source file name \"{value}\": it must be a file name without / or "
        "\\, at most 255 characters. Set another name with --source-name NAME.",
    },

    # inspect
    "inspect.artefact_id": {"vi": "Mã tài liệu", "en": "Artefact id"},
    "inspect.level": {"vi": "Độ mật", "en": "Level"},
    "inspect.doc_number": {"vi": "Số tài liệu", "en": "Document number"},
    "inspect.issued_on": {"vi": "Ngày ban hành", "en": "Issue date"},
    "inspect.title": {"vi": "Trích yếu", "en": "Title"},
    "inspect.source_name": {"vi": "Tệp gốc", "en": "Source file"},
    "inspect.key": {"vi": "Khóa", "en": "Key"},
    "inspect.key_value": {
        "vi": "{key_id} v{version}, thuật toán {algorithm}",
        "en": "{key_id} v{version}, algorithm {algorithm}",
    },
    "inspect.plaintext_bytes": {"vi": "Kích thước bản rõ", "en": "Plaintext size"},
    "inspect.envelope_bytes": {"vi": "Kích thước phong bì", "en": "Envelope size"},
    "inspect.sealed_at": {"vi": "Thời điểm niêm phong", "en": "Sealed at"},
    "inspect.registered": {"vi": "Có trong sổ đăng ký niemphongd", "en": "Registered with niemphongd"},
    "inspect.format": {"vi": "Định dạng", "en": "Format"},
    "inspect.format_value": {
        "vi": "phiên bản {version}, đoạn {segment}, phần đầu {header}",
        "en": "version {version}, segments of {segment}, header {header}",
    },
    "inspect.registry_mismatch": {
        "vi": "!!! CẢNH BÁO: độ mật hoặc số tài liệu trong phần đầu phong bì KHÁC với sổ đăng ký của niemphongd "
        "lúc niêm phong. Phần đầu phong bì đã bị sửa đổi; đừng tin các thông tin dưới đây và báo ngay cho "
        "người đứng đầu cơ quan.",
        "en": "!!! WARNING: the level or document number in the envelope header DIFFER from what niemphongd's "
        "registry recorded at sealing. The header has been altered; do not trust the facts below, and report "
        "it to the head of the agency at once.",
    },
    "inspect.registry_mismatch_warning": {
        "vi": "phần đầu phong bì {envelope} đã bị sửa đổi: độ mật hoặc số tài liệu khác với sổ đăng ký của "
        "niemphongd. Hãy báo ngay cho người đứng đầu cơ quan.",
        "en": "the header of envelope {envelope} has been altered: its level or document number differ from "
        "niemphongd's registry. Report it to the head of the agency at once.",
    },
    "inspect.unverified": {
        "vi": "Lưu ý: các thông tin trên được đọc từ phần đầu phong bì và chưa được xác thực "
        "cho đến khi phong bì được mở.",
        "en": "Note: these facts come from the envelope header and are not verified until the envelope is opened.",
    },

    # request, approve, deny, pending, show
    "request.sent": {
        "vi": "Đã gửi yêu cầu {request_id} để khai thác tài liệu số {doc_number}, độ {level}; cần {required} "
        "phê duyệt. Khi được duyệt, chạy: niemphong view {envelope} --out TỆP --request {request_id}",
        "en": "Sent request {request_id} for document {doc_number}, level {level}; it needs {required} approval(s). "
        "Once approved, run: niemphong view {envelope} --out FILE --request {request_id}",
    },
    "approve.partial": {
        "vi": "Đã phê duyệt yêu cầu {request_id}: {count}/{required} phê duyệt; phê duyệt còn thiếu phải do người khác thực hiện.",
        "en": "Approved request {request_id}: {count}/{required} approvals; the rest must come from other approvers.",
    },
    "approve.complete": {
        "vi": "Yêu cầu {request_id} đã đủ phê duyệt: {requester} được mở tài liệu tối đa {opens} lần, đến {expires}.",
        "en": "Request {request_id} is fully approved: {requester} may open the document up to {opens} time(s) until {expires}.",
    },
    "deny.done": {"vi": "Đã từ chối yêu cầu {request_id}.", "en": "Denied request {request_id}."},
    "pending.empty": {"vi": "Không có yêu cầu nào đang chờ duyệt.", "en": "No pending requests."},
    "pending.truncated": {
        "vi": "… và còn nữa: niemphongd chỉ liệt kê {count} yêu cầu cũ nhất đang chờ duyệt.",
        "en": "… and more: niemphongd listed only the {count} oldest pending requests.",
    },
    "column.request_id": {"vi": "Mã yêu cầu", "en": "Request id"},
    "column.level": {"vi": "Độ mật", "en": "Level"},
    "column.doc_number": {"vi": "Số tài liệu", "en": "Document number"},
    "column.requester": {"vi": "Người yêu cầu", "en": "Requester"},
    "column.approvals": {"vi": "Phê duyệt", "en": "Approvals"},
    "column.created_at": {"vi": "Gửi lúc", "en": "Sent at"},
    "column.purpose": {"vi": "Mục đích", "en": "Purpose"},
    "show.request_id": {"vi": "Mã yêu cầu", "en": "Request id"},
    "show.state": {"vi": "Trạng thái", "en": "State"},
    "show.artefact_id": {"vi": "Mã tài liệu", "en": "Artefact id"},
    "show.level": {"vi": "Độ mật", "en": "Level"},
    "show.doc_number": {"vi": "Số tài liệu", "en": "Document number"},
    "show.requester": {"vi": "Người yêu cầu", "en": "Requester"},
    "show.purpose": {"vi": "Mục đích khai thác", "en": "Purpose"},
    "show.created_at": {"vi": "Gửi lúc", "en": "Sent at"},
    "show.approvals": {"vi": "Phê duyệt", "en": "Approvals"},
    "show.approval_entry": {"vi": "{approver}, lúc {time}", "en": "{approver}, at {time}"},
    "show.denied_by": {"vi": "Người từ chối", "en": "Denied by"},
    "show.deny_reason": {"vi": "Lý do từ chối", "en": "Reason for denial"},
    "show.grant": {"vi": "Quyền mở", "en": "Grant"},
    "show.grant_value": {
        "vi": "đã dùng {used}/{allowed} lượt mở, hết hạn {expires}",
        "en": "{used} of {allowed} opens used, expires {expires}",
    },

    # view
    "view.done": {
        "vi": "Đã ghi bản rõ vào {out}: {size}. Số lượt mở còn lại: {opens}.",
        "en": "Wrote the plaintext to {out}: {size}. Opens left: {opens}.",
    },
    "view.reminder": {
        "vi": "Tệp này chứa bí mật nhà nước ở dạng không mã hóa: bảo quản theo đúng độ mật của tài liệu "
        "và xóa khi đã dùng xong.",
        "en": "This file holds state secrets unencrypted: protect it as its level requires and delete it when done.",
    },

    "view.open_may_be_counted": {
        "vi": "niemphongd có thể đã tính một lượt mở cho lần mở này: lượt mở được tính ngay khi phần đầu "
        "phong bì được xác thực và không được trả lại khi lỗi xảy ra sau đó. Xem số lượt còn lại bằng "
        "niemphong show MÃ_YÊU_CẦU.",
        "en": "niemphongd may have counted one open against your grant: an open is counted as soon as the "
        "envelope header verifies and is not given back when a later step fails. See the opens left with "
        "niemphong show REQUEST_ID.",
    },
    "not_approved.pending": {
        "vi": "Yêu cầu {request_id} vẫn đang chờ duyệt: mới có {count}/{required} phê duyệt.",
        "en": "Request {request_id} is still pending: {count} of {required} approvals so far.",
    },
    "not_approved.denied": {
        "vi": "Yêu cầu {request_id} đã bị {denied_by} từ chối. Lý do: {reason}",
        "en": "Request {request_id} was denied by {denied_by}. Reason: {reason}",
    },
    "not_approved.used_up": {
        "vi": "Quyền mở của yêu cầu {request_id} đã dùng hết: {used}/{allowed} lượt mở. Hãy gửi yêu cầu mới.",
        "en": "The grant of request {request_id} is used up: {used} of {allowed} opens. Send a new request.",
    },
    "not_approved.expired": {
        "vi": "Quyền mở của yêu cầu {request_id} đã hết hạn lúc {expires_at}. Hãy gửi yêu cầu mới.",
        "en": "The grant of request {request_id} expired at {expires_at}. Send a new request.",
    },
    "not_approved.other_document": {
        "vi": "Yêu cầu {request_id} dành cho tài liệu khác (số {doc_number}), không phải tài liệu trong phong bì này.",
        "en": "Request {request_id} is for another document (number {doc_number}), not the one in this envelope.",
    },
    "not_approved.none_pending": {
        "vi": "Bạn không có yêu cầu nào đang chờ duyệt cho tài liệu này: có thể bạn chưa gửi yêu cầu, hoặc "
        "yêu cầu trước đã bị từ chối, đã dùng hết lượt mở hay đã hết hạn.",
        "en": "You have no pending request for this document: you may not have asked yet, or an earlier "
        "request was denied, used up or expired.",
    },
    "not_approved.more_pending": {
        "vi": "… và {count} yêu cầu khác của bạn cho tài liệu này cũng đang chờ duyệt.",
        "en": "… and {count} more of your requests for this document are pending too.",
    },

    # audit verify, export and show
    "audit.verify.intact": {
        "vi": "Nhật ký kiểm toán nguyên vẹn: mọi mã băm, liên kết và mốc xác thực đều khớp.",
        "en": "The audit log is intact: every hash, link and checkpoint verifies.",
    },
    "audit.verify.not_intact": {
        "vi": "Nhật ký kiểm toán KHÔNG nguyên vẹn. {problem}",
        "en": "The audit log is NOT intact. {problem}",
    },
    "audit.verify.counts": {
        "vi": "Đã kiểm tra {entries} mục ({records} bản ghi, {checkpoints} mốc xác thực); mốc xác thực cuối "
        "ở mục số {last_checkpoint}; mã nhật ký {log_id}.",
        "en": "Checked {entries} entries ({records} records, {checkpoints} checkpoints); last checkpoint "
        "at entry {last_checkpoint}; log id {log_id}.",
    },
    "audit.verify.advice": {
        "vi": "Giữ nguyên tệp nhật ký, không sửa hay xóa gì, và báo ngay cho người đứng đầu cơ quan.",
        "en": "Keep the log file as it is, change or delete nothing, and report this to the head of the agency at once.",
    },
    "audit.verify.warning": {"vi": "Lưu ý: {message}", "en": "Note: {message}"},
    "audit.problem.EDITED": {
        "vi": "Mục số {seq} (dòng {line}) đã bị sửa: nội dung không còn khớp với mã băm của nó "
        "hoặc với liên kết ở mục sau nó.",
        "en": "Entry {seq} (line {line}) was edited: its content no longer matches its hash "
        "or the link in the entry after it.",
    },
    "audit.problem.REMOVED": {
        "vi": "Các mục từ số {seq} đến số {end} đã bị xóa (chỗ của chúng là ngay trước dòng {line}).",
        "en": "Entries {seq} to {end} were removed (they belong just before line {line}).",
    },
    "audit.problem.REORDERED": {
        "vi": "Các mục bị đảo thứ tự: dòng {line} chứa mục số {seq}, nhưng chỗ đó là của mục số {expected}, "
        "mục này nằm ở phía sau.",
        "en": "Entries were reordered: line {line} holds entry {seq}, but entry {expected} belongs there "
        "and comes later.",
    },
    "audit.problem.DUPLICATED": {
        "vi": "Mục số {seq} bị chép thêm một lần ở dòng {line}.",
        "en": "Entry {seq} appears a second time, on line {line}.",
    },
    "audit.problem.TRUNCATED": {
        "vi": "Nhật ký bị cắt mất phần cuối: thiếu các mục từ số {seq} đến số {end} (từ dòng {line}).",
        "en": "The log was cut off: entries {seq} to {end} are missing (from line {line}).",
    },
    "audit.problem.TRUNCATED_LINE": {
        "vi": "Nhật ký bị cắt giữa chừng: dòng {line} (mục số {seq}) không trọn vẹn.",
        "en": "The log was cut off in the middle of line {line} (entry {seq}).",
    },
    "audit.problem.FORGED_TAIL": {
        "vi": "Phần cuối nhật ký là giả mạo: từ mục số {seq} (dòng {line}) trở đi không phải do niemphongd ghi.",
        "en": "The end of the log is forged: the entries from {seq} (line {line}) on were not written by niemphongd.",
    },
    "audit.problem.FORGED_CHECKPOINT": {
        "vi": "Mốc xác thực ở mục số {seq} (dòng {line}) không khớp với khóa trong token: các mục từ số "
        "{expected} đến số {seq} đã bị viết lại.",
        "en": "The checkpoint at entry {seq} (line {line}) does not verify with the key in the token: "
        "entries {expected} to {seq} were rewritten.",
    },
    "audit.problem.UNAUTHENTICATED_TAIL": {
        "vi": "các mục từ số {seq} đến số {end} nằm sau mốc xác thực cuối cùng nên chưa được xác thực.",
        "en": "entries {seq} to {end} follow the last checkpoint, so nothing authenticates them yet.",
    },
    "audit.problem.RECOVERED_AFTER_CRASH": {
        "vi": "các mục từ số {seq} đến số {end} được ghi trước khi niemphongd dừng đột ngột và chỉ được "
        "một mốc xác thực bao phủ khi khởi động lại.",
        "en": "entries {seq} to {end} were written before niemphongd stopped abruptly and were covered "
        "by a checkpoint only at restart.",
    },
    "audit.problem.OTHER": {
        "vi": "Vấn đề {kind} ở mục số {seq}, dòng {line}.",
        "en": "Problem {kind} at entry {seq}, line {line}.",
    },
    "audit.since_after_until": {
        "vi": "--since phải là thời điểm trước --until.",
        "en": "--since must be earlier than --until.",
    },
    "audit.exported_file": {
        "vi": "Đã xuất {count} bản ghi vào {out}.",
        "en": "Exported {count} records to {out}.",
    },
    "audit.exported_stdout": {
        "vi": "Đã xuất {count} bản ghi ra stdout.",
        "en": "Exported {count} records to stdout.",
    },
    "audit.history_empty": {
        "vi": "Nhật ký kiểm toán không có bản ghi nào về tài liệu {artefact_id}.",
        "en": "The audit log has no record about document {artefact_id}.",
    },
    "audit.classification.seal": {"vi": "Niêm phong", "en": "seal"},
    "audit.classification.not_secret": {"vi": "Không chứa BMNN", "en": "not secret"},
    "audit.classification.refuse": {"vi": "Từ chối", "en": "rejected"},
    "audit.decision.allowed": {"vi": "Cho phép", "en": "allowed"},
    "audit.decision.refused": {"vi": "Từ chối", "en": "refused"},
    "audit.decision.failed": {"vi": "Lỗi", "en": "failed"},
    "audit.column.seq": {"vi": "Số TT", "en": "Seq"},
    "audit.column.time": {"vi": "Thời gian (giờ Việt Nam)", "en": "Time (Vietnam)"},
    "audit.column.operation": {"vi": "Thao tác", "en": "Operation"},
    "audit.column.identity": {"vi": "Người thực hiện", "en": "Identity"},
    "audit.column.decision": {"vi": "Quyết định", "en": "Decision"},
    "audit.column.reason": {"vi": "Lý do", "en": "Reason"},
    "audit.column.detail": {"vi": "Chi tiết", "en": "Detail"},
    "audit.detail.purpose": {"vi": "mục đích: {purpose}", "en": "purpose: {purpose}"},
    "audit.detail.deny_reason": {"vi": "lý do từ chối: {reason}", "en": "reason for denial: {reason}"},
    "audit.detail.approvals": {"vi": "phê duyệt {count}/{required}", "en": "approvals {count}/{required}"},
    "audit.detail.opens": {"vi": "lượt mở {used}/{allowed}", "en": "opens {used}/{allowed}"},
    "audit.detail.request": {"vi": "yêu cầu {request_id}…", "en": "request {request_id}…"},
    "audit.detail.doc_number": {"vi": "số {doc_number}", "en": "number {doc_number}"},
    "audit.op.EnvelopeService/Seal": {"vi": "Niêm phong", "en": "Seal"},
    "audit.op.EnvelopeService/Open": {"vi": "Mở tài liệu", "en": "Open"},
    "audit.op.EnvelopeService/Inspect": {"vi": "Xem thông tin phong bì", "en": "Inspect"},
    "audit.op.EnvelopeService/SealSmall": {"vi": "Niêm phong tệp nhỏ", "en": "Seal small document"},
    "audit.op.SpoolService/SealFile": {"vi": "Niêm phong tệp trong thư mục trung chuyển", "en": "Seal spool file"},
    "audit.op.SpoolService/OpenFile": {"vi": "Mở tệp trong thư mục trung chuyển", "en": "Open spool file"},
    "audit.op.AccessService/RequestAccess": {"vi": "Xin khai thác", "en": "Request access"},
    "audit.op.AccessService/Approve": {"vi": "Phê duyệt", "en": "Approve"},
    "audit.op.AccessService/Deny": {"vi": "Từ chối yêu cầu", "en": "Deny"},
    "audit.op.AccessService/ListPending": {"vi": "Xem yêu cầu chờ duyệt", "en": "List pending requests"},
    "audit.op.AccessService/GetRequest": {"vi": "Xem một yêu cầu", "en": "Show request"},
    "audit.op.AuditService/Verify": {"vi": "Kiểm tra nhật ký kiểm toán", "en": "Verify audit log"},
    "audit.op.AuditService/Export": {"vi": "Xuất nhật ký kiểm toán", "en": "Export audit log"},
    "audit.op.AuditService/ArtefactHistory": {"vi": "Xem lịch sử tài liệu", "en": "Show document history"},
    "audit.op.PolicyService/GetPolicy": {"vi": "Xem chính sách", "en": "Show policy"},
    "audit.op.PolicyService/Decide": {"vi": "Kiểm tra phân loại", "en": "Check classification"},
    "audit.op.PolicyService/ListDue": {"vi": "Xem tài liệu sắp hết hạn bảo vệ", "en": "List documents due"},
    "audit.op.PolicyService/RecordExtension": {"vi": "Ghi gia hạn bảo vệ", "en": "Record extension"},
    "audit.op.KeyService/ListKeys": {"vi": "Xem phiên bản khóa", "en": "List keys"},
    "audit.op.KeyService/ProposeKeyChange": {"vi": "Đề xuất thay đổi khóa", "en": "Propose key change"},
    "audit.op.KeyService/ConfirmKeyChange": {"vi": "Xác nhận thay đổi khóa", "en": "Confirm key change"},
    "audit.op.KeyService/RejectKeyChange": {"vi": "Từ chối thay đổi khóa", "en": "Reject key change"},
    "audit.op.KeyService/ListKeyChanges": {"vi": "Xem đề xuất thay đổi khóa", "en": "List key changes"},
    "audit.op.KeyService/Rewrap": {"vi": "Bọc lại phong bì", "en": "Rewrap"},
    "audit.op.RecoveryService/StartRecovery": {"vi": "Bắt đầu phiên khôi phục", "en": "Start recovery"},
    "audit.op.RecoveryService/ConfirmRecovery": {"vi": "Xác nhận phiên khôi phục", "en": "Confirm recovery"},
    "audit.op.RecoveryService/EndRecovery": {"vi": "Kết thúc phiên khôi phục", "en": "End recovery"},
    "audit.op.RecoveryService/GetRecovery": {"vi": "Xem phiên khôi phục", "en": "Show recovery session"},
    "audit.op.RecoveryService/RecoverRewrap": {"vi": "Bọc lại bằng token khôi phục", "en": "Rewrap through recovery"},
    "audit.op.RecoveryService/RecoverOpen": {"vi": "Mở bằng token khôi phục", "en": "Open through recovery"},

    # dev init and dev add-identity
    "dev.already_initialized": {
        "vi": "{path} đã có, nên thư mục này đã được khởi tạo trước đó. Chọn thư mục khác hoặc xóa thư mục cũ.",
        "en": "{path} already exists, so this folder was initialized before. Choose another folder or remove the old one.",
    },
    "dev.entry_exists": {
        "vi": "{path} đã có. niemphong dev init chỉ tạo môi trường trong thư mục trống hoặc chưa tồn tại.",
        "en": "{path} already exists. niemphong dev init works only in an empty or new folder.",
    },
    "dev.socket_too_long": {
        "vi": "Đường dẫn socket {path} dài {length} byte, vượt giới hạn {max} byte của socket Unix. "
        "Hãy chọn thư mục có đường dẫn ngắn hơn, ví dụ /tmp/np.",
        "en": "Socket path {path} is {length} bytes long, over the Unix socket limit of {max} bytes. "
        "Choose a folder with a shorter path, for example /tmp/np.",
    },
    "dev.bad_folder": {
        "vi": "Đường dẫn thư mục {path} chứa ký tự mà tệp cấu hình softhsm2.conf không ghi được ({characters}): "
        "SoftHSM2 coi # là đầu chú thích, = là dấu tách khóa với giá trị và ký tự xuống dòng là hết một thiết lập. Hãy chọn thư mục khác, ví dụ /tmp/np.",
        "en": "Folder path {path} contains characters that the softhsm2.conf configuration file cannot hold "
        "({characters}): SoftHSM2 reads # as the start of a comment, = as the key-value separator and a line "
        "break as the end of a setting. "
        "Choose another folder, for example /tmp/np.",
    },
    "dev.folder_not_utf8": {
        "vi": "Đường dẫn thư mục {path} có byte không phải UTF-8, nên không ghi được vào các tệp cấu hình. "
        "Hãy chọn thư mục có tên UTF-8, ví dụ /tmp/np.",
        "en": "Folder path {path} has bytes that are not UTF-8, so it cannot be written into the configuration "
        "files. Choose a folder with a UTF-8 name, for example /tmp/np.",
    },
    "dev.not_folder": {
        "vi": "{path} đã có và không phải là thư mục.",
        "en": "{path} exists and is not a folder.",
    },
    "dev.daemon_missing": {
        "vi": "Chưa cài phần daemon của Niêm Phong (niemphong.daemon). Cài bằng: pip install 'niemphong[daemon]'",
        "en": "The Niêm Phong daemon part (niemphong.daemon) is not installed. Install it with: "
        "pip install 'niemphong[daemon]'",
    },
    "dev.module_missing": {
        "vi": "Không tìm thấy thư viện PKCS#11 của SoftHSM2 (đã tìm: {paths}). "
        "Cài gói softhsm2 hoặc đặt NIEMPHONG_PKCS11_MODULE.",
        "en": "SoftHSM2's PKCS#11 library was not found (looked in: {paths}). "
        "Install the softhsm2 package or set NIEMPHONG_PKCS11_MODULE.",
    },
    "dev.module_override_missing": {
        "vi": "NIEMPHONG_PKCS11_MODULE trỏ tới {path}, nhưng tệp này không tồn tại.",
        "en": "NIEMPHONG_PKCS11_MODULE points to {path}, which does not exist.",
    },
    "dev.provision_failed": {
        "vi": "Khởi tạo token thất bại (niemphongd provision thoát với mã {code}): {detail}. "
        "Đã xóa những gì vừa tạo trong {dir}. Chạy lại với --verbose để xem toàn bộ thông báo của niemphongd.",
        "en": "Token provisioning failed (niemphongd provision exited with code {code}): {detail}. "
        "Removed what was just created in {dir}. Run again with --verbose to see niemphongd's whole output.",
    },
    "dev.provision_timeout": {
        "vi": "Khởi tạo token không xong sau {seconds} giây. Đã xóa những gì vừa tạo trong {dir}.",
        "en": "Token provisioning did not finish within {seconds} seconds. Removed what was just created in {dir}.",
    },
    "dev.created": {
        "vi": "Đã tạo môi trường phát triển trong {dir}:\n"
        "  cấu hình niemphongd:  {config}\n"
        "  token SoftHSM2:       {tokens}\n"
        "  PKI thử nghiệm:       {pki}\n"
        "  định danh:            {identities} ({names})\n"
        "  biến môi trường:      {client_env}\n"
        "\n"
        "Bước tiếp theo:\n"
        "  1. Chạy niemphongd:                {daemon_command}\n"
        "  2. Trong một cửa sổ dòng lệnh khác: {source_command}\n"
        "  3. Niêm phong thử một tệp:         {scan_command}",
        "en": "Created a development environment in {dir}:\n"
        "  niemphongd configuration: {config}\n"
        "  SoftHSM2 token:           {tokens}\n"
        "  dev PKI:                  {pki}\n"
        "  identities:               {identities} ({names})\n"
        "  client environment:       {client_env}\n"
        "\n"
        "Next steps:\n"
        "  1. Start niemphongd:       {daemon_command}\n"
        "  2. In another terminal:    {source_command}\n"
        "  3. Seal a file to try it:  {scan_command}",
    },
    "dev.joined": {
        "vi": "Đã tạo niemphongd thứ hai trong {dir}, dùng chung token, khóa, định danh và cơ sở dữ liệu với {shared}:\n"
        "  cấu hình niemphongd:  {config}\n"
        "  socket:               {socket}\n"
        "Chạy: {daemon_command}",
        "en": "Created a second niemphongd in {dir}, sharing the token, keys, identities and database of {shared}:\n"
        "  niemphongd configuration: {config}\n"
        "  socket:                   {socket}\n"
        "Start it: {daemon_command}",
    },
    "dev.join_missing": {
        "vi": "Không tìm thấy {path}. Tạo môi trường đầu tiên bằng niemphong dev init DIR --postgres DSN trước.",
        "en": "{path} not found. Create the first environment with niemphong dev init DIR --postgres DSN first.",
    },
    "dev.join_unreadable": {
        "vi": "Không đọc được cấu hình {path}: {error}",
        "en": "Cannot read the configuration {path}: {error}",
    },
    "dev.join_not_postgres": {
        "vi": "{path} lưu trạng thái trong SQLite, chỉ một niemphongd dùng được. "
        "Chỉ nhập được môi trường tạo bằng niemphong dev init DIR --postgres DSN.",
        "en": "{path} keeps state in SQLite, which only one niemphongd can use. "
        "Only an environment made with niemphong dev init DIR --postgres DSN can be joined.",
    },
    "dev.identity_created": {
        "vi": "Đã cấp định danh {name} (vai trò {role}) trong {path}.",
        "en": "Issued identity {name} (role {role}) in {path}.",
    },
    "dev.identity_exists": {
        "vi": "Định danh {path} đã có; chọn tên khác.",
        "en": "Identity {path} already exists; choose another name.",
    },
    "dev.bad_name": {
        "vi": "Tên định danh không hợp lệ: {value}. Dùng chữ cái Latin không dấu, chữ số, dấu chấm, "
        "gạch ngang hoặc gạch dưới, tối đa 64 ký tự.",
        "en": "Invalid identity name: {value}. Use ASCII letters, digits, dots, hyphens or underscores, "
        "at most 64 characters.",
    },
    "dev.bad_role": {
        "vi": "vai trò không hợp lệ: {value}; dùng một hoặc nhiều vai trò, cách nhau bởi dấu phẩy, trong số: {roles}",
        "en": "invalid role: {value}; use one or more of these roles, separated by commas: {roles}",
    },
    "dev.ca_unreadable": {
        "vi": "Không đọc được CA thử nghiệm trong {path}: {error}",
        "en": "Cannot read the dev CA in {path}: {error}",
    },
    "dev.no_ca": {
        "vi": "Không tìm thấy CA thử nghiệm {path}. Chạy niemphong dev init {dir} trước.",
        "en": "Dev CA {path} not found. Run niemphong dev init {dir} first.",
    },
    "dev.write_failed": {
        "vi": "Không tạo được {path}: {error}",
        "en": "Cannot create {path}: {error}",
    },
}

# Messages of the key lifecycle commands (keys, rewrap, recover).
from niemphong.clients.catalog_keys import KEY_CATALOG  # noqa: E402

CATALOG.update(KEY_CATALOG)

# Batch scanning, batches, printed copies and incidents.
from niemphong.clients.catalog_archive import ARCHIVE_CATALOG  # noqa: E402

CATALOG.update(ARCHIVE_CATALOG)

# Messages of the classification policy commands live in their own module.
from niemphong.clients.catalog_policy import POLICY_CATALOG  # noqa: E402

CATALOG.update(POLICY_CATALOG)

# Messages of the `niemphong hsm` commands live in their own module.
from niemphong.clients.catalog_token import TOKEN_CATALOG  # noqa: E402

CATALOG.update(TOKEN_CATALOG)

# Operating-system error texts shown inside other messages.
from niemphong.clients.catalog_system import SYSTEM_CATALOG  # noqa: E402

CATALOG.update(SYSTEM_CATALOG)

# Short labels of error reasons for audit tables.
from niemphong.clients.catalog_reasons import REASON_LABEL_CATALOG  # noqa: E402

CATALOG.update(REASON_LABEL_CATALOG)
