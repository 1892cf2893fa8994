"""Messages of the archive's commands (batch scanning, batches, print, copies, incidents), in Vietnamese and English.

They follow the rules of ``catalog.py``, which merges them into CATALOG.
"""

from __future__ import annotations

ARCHIVE_CATALOG: dict[str, dict[str, str]] = {
    # Help text.
    "help.scan.remove_source": {
        "vi": "xóa tệp quét sau khi niemphongd xác nhận phong bì mở ra đúng tệp đó (xem giới hạn trên SSD trong tài liệu)",
        "en": "remove the scan once niemphongd confirms that the envelope opens to exactly that file "
        "(see the documented limits on SSDs)",
    },
    "help.scan.remove_sources": {
        "vi": "với --manifest: xóa từng tệp quét sau khi phong bì của nó được xác nhận",
        "en": "with --manifest: remove each scan once its envelope is confirmed",
    },
    "help.scan.manifest": {
        "vi": "danh mục bàn giao (CSV xuất từ Excel, UTF-8, dấu phẩy hoặc chấm phẩy, tiêu đề tiếng Việt)",
        "en": "handover list (CSV exported from Excel, UTF-8, commas or semicolons, Vietnamese headers)",
    },
    "help.scan.dir": {"vi": "thư mục chứa các tệp quét của danh mục", "en": "folder holding the list's scans"},
    "help.scan.out_dir": {
        "vi": "thư mục ghi các phong bì (TỆP.npe); được tạo nếu chưa có",
        "en": "folder for the envelopes (FILE.npe); created if missing",
    },
    "help.scan.batch": {
        "vi": "mã lô bàn giao (mặc định: lô đã ghi trong OUT, hoặc mở lô mới từ danh mục)",
        "en": "handover batch id (default: the batch remembered in OUT, or a new batch from the list)",
    },
    "help.batch": {"vi": "lô tài liệu bàn giao phục vụ số hóa", "en": "handover batches for scanning"},
    "help.batch.open": {
        "vi": "mở lô bàn giao từ danh mục; in ra mã lô, lô chờ lãnh đạo cho phép",
        "en": "open a handover batch from a list; prints the batch id, which waits for permission",
    },
    "help.batch.approve": {
        "vi": "cho phép mang tài liệu của lô ra khỏi nơi lưu giữ",
        "en": "permit a batch's documents to leave storage",
    },
    "help.batch.close": {
        "vi": "ghi nhận tài liệu được trả lại và đối chiếu lô",
        "en": "record the documents' return and reconcile the batch",
    },
    "help.batch.show": {"vi": "xem tài liệu và kết quả đối chiếu của lô", "en": "show a batch's documents and reconciliation"},
    "help.batch.minutes": {
        "vi": "xuất biên bản bàn giao (PDF); --json in thêm dữ liệu lô",
        "en": "write the handover minutes (PDF); --json also prints the batch",
    },
    "help.batch.minutes_out": {"vi": "tệp PDF biên bản sẽ tạo", "en": "minutes PDF file to create"},
    "help.batch.id": {"vi": "mã lô (32 chữ số hex)", "en": "batch id (32 hex digits)"},
    "help.batch.handed_over_by": {
        "vi": "họ tên người giao tài liệu (người quản lý, lưu giữ)",
        "en": "name of the person handing the documents over (their custodian)",
    },
    "help.batch.note": {"vi": "ghi chú (tối đa 2.000 ký tự)", "en": "note (at most 2,000 characters)"},
    "help.batch.missing": {
        "vi": "số tài liệu không được trả lại (lặp lại cho nhiều tài liệu)",
        "en": "number of a document that did not come back (repeat for several)",
    },
    "help.batch.damaged": {
        "vi": "số tài liệu trả lại bị hư hỏng (lặp lại cho nhiều tài liệu)",
        "en": "number of a document that came back damaged (repeat for several)",
    },
    "help.print": {
        "vi": "in bản sao có đóng dấu \"BẢN SAO BMNN\" và số bản sao, ra tệp PDF",
        "en": "print a copy stamped \"BẢN SAO BMNN\" with its copy number, as a PDF",
    },
    "help.print.out": {"vi": "tệp PDF bản sao sẽ tạo (quyền 0600)", "en": "copy PDF file to create (mode 0600)"},
    "help.print.request": {
        "vi": "dùng quyền của yêu cầu này (mặc định: quyền còn lượt in được cấp sớm nhất)",
        "en": "use the grant of this request (default: the oldest grant with copies left)",
    },
    "help.copies": {"vi": "liệt kê các bản sao đã in của một tài liệu", "en": "list the copies printed of a document"},
    "help.copies.artefact": {"vi": "tệp phong bì hoặc mã tài liệu", "en": "envelope file or artefact id"},
    "help.request.copies": {
        "vi": "số bản sao xin in, 0 đến 20 (mặc định 0: không in)",
        "en": "printed copies asked for, 0 to 20 (default 0: no printing)",
    },
    "help.request.recipient": {
        "vi": "cơ quan, tổ chức ngoài cơ quan được cung cấp tài liệu; cần người đứng đầu cơ quan phê duyệt",
        "en": "agency outside this one that receives the document; needs the head of the agency's approval",
    },
    "help.incident": {
        "vi": "báo cáo và xử lý sự cố lộ, mất bí mật nhà nước",
        "en": "report and handle loss or exposure of state secrets",
    },
    "help.incident.report": {
        "vi": "báo cáo sự cố; mọi quyền khai thác tài liệu liên quan bị tạm dừng ngay",
        "en": "report an incident; every grant on the documents is suspended at once",
    },
    "help.incident.artefact": {
        "vi": "phong bì hoặc mã tài liệu liên quan (lặp lại cho nhiều tài liệu)",
        "en": "envelope or artefact id concerned (repeat for several)",
    },
    "help.incident.text": {"vi": "mô tả sự cố (1 đến 2.000 ký tự)", "en": "what happened (1 to 2,000 characters)"},
    "help.incident.close": {"vi": "đóng sự cố", "en": "close an incident"},
    "help.incident.id": {"vi": "mã sự cố (32 chữ số hex)", "en": "incident id (32 hex digits)"},
    "help.incident.resolution": {
        "vi": "kết quả xử lý (1 đến 2.000 ký tự)",
        "en": "how it was resolved (1 to 2,000 characters)",
    },
    "help.incident.revoke": {
        "vi": "thu hồi hẳn các quyền đang bị tạm dừng thay vì cho dùng lại",
        "en": "revoke the suspended grants for good instead of lifting the suspension",
    },
    "help.incident.list": {"vi": "liệt kê các sự cố, sự cố đang mở trước", "en": "list incidents, open ones first"},
    "help.dev.full_name": {
        "vi": "họ tên đầy đủ ghi vào chứng thư, ví dụ \"Nguyễn Văn An\"",
        "en": "full name to put in the certificate, e.g. \"Nguyễn Văn An\"",
    },
    "help.dev.title": {"vi": "chức vụ ghi vào chứng thư", "en": "title (position) to put in the certificate"},

    # Argument values.
    "arg.copies_invalid": {
        "vi": "số bản sao không hợp lệ: {value}; dùng số nguyên từ 0 đến {max}",
        "en": "invalid number of copies: {value}; use a whole number from 0 to {max}",
    },
    "arg.hex_id_invalid": {
        "vi": "mã không hợp lệ: {value}; mã gồm 32 chữ số hex",
        "en": "invalid id: {value}; an id is 32 hex digits",
    },
    "role.head": {"vi": "người đứng đầu cơ quan (head)", "en": "head of the agency"},

    # Handover lists.
    "manifest.bad_encoding": {
        "vi": "Không đọc được danh mục {path}: tệp không ở dạng UTF-8 (lỗi ở dòng {line}). "
        "Trong Excel, chọn Lưu thành (Save As) > \"CSV UTF-8 (Comma delimited)\" rồi thử lại.",
        "en": "Cannot read the list {path}: it is not UTF-8 (error on line {line}). "
        "In Excel, choose Save As > \"CSV UTF-8 (Comma delimited)\" and try again.",
    },
    "manifest.too_large": {
        "vi": "Danh mục {path} lớn hơn {max} byte; hãy kiểm tra lại tệp.",
        "en": "The list {path} is larger than {max} bytes; check the file.",
    },
    "manifest.empty": {"vi": "Danh mục {path} không có dòng nào.", "en": "The list {path} has no rows."},
    "manifest.missing_columns": {
        "vi": "Danh mục {path} thiếu cột: {columns}. Các cột tìm thấy: {found}.",
        "en": "The list {path} lacks the columns: {columns}. Columns found: {found}.",
    },
    "manifest.row_error": {"vi": "dòng {line}: {message}", "en": "line {line}: {message}"},
    # Row problems: the detail after 'cột "{column}": ' (manifest.row_column).
    "manifest.row_column": {"vi": "cột \"{column}\": {detail}", "en": "column \"{column}\": {detail}"},
    "manifest.missing_value": {"vi": "thiếu giá trị", "en": "no value"},
    "manifest.bad_date": {
        "vi": "ngày không hợp lệ: \"{value}\"; dùng dd/mm/yyyy hoặc YYYY-MM-DD",
        "en": "invalid date: \"{value}\"; use dd/mm/yyyy or YYYY-MM-DD",
    },
    "manifest.bad_level": {
        "vi": "độ mật không hợp lệ: \"{value}\"; dùng Mật, Tối mật hoặc Tuyệt mật",
        "en": "invalid level: \"{value}\"; use Mật, Tối mật or Tuyệt mật",
    },
    "manifest.bad_count": {
        "vi": "\"{value}\" không phải số nguyên dương hợp lệ",
        "en": "\"{value}\" is not a valid positive whole number",
    },
    "manifest.bad_file_name": {
        "vi": "\"{value}\" phải là tên tệp trong thư mục --dir, không có đường dẫn",
        "en": "\"{value}\" must be a file name inside --dir, without folders",
    },
    "manifest.duplicate": {
        "vi": "số tài liệu \"{value}\" đã có ở dòng {first_line}",
        "en": "the document number \"{value}\" already appears on line {first_line}",
    },

    # Audit log labels of the archive's operations.
    "audit.op.EnvelopeService/Verify": {"vi": "Kiểm tra phong bì trước khi xóa tệp quét", "en": "Verify envelope"},
    "audit.op.EnvelopeService/ConfirmSeal": {
        "vi": "Xác nhận đã ghi phong bì", "en": "Confirm envelope written",
    },
    "audit.op.EnvelopeService/AbandonSeal": {
        "vi": "Báo phong bì không được giữ lại", "en": "Report envelope not kept",
    },
    "audit.op.HandoverService/OpenBatch": {"vi": "Mở lô bàn giao", "en": "Open batch"},
    "audit.op.HandoverService/ApproveBatch": {"vi": "Cho phép mang tài liệu ra", "en": "Permit batch"},
    "audit.op.HandoverService/CloseBatch": {"vi": "Đóng lô bàn giao", "en": "Close batch"},
    "audit.op.HandoverService/GetBatch": {"vi": "Xem lô bàn giao", "en": "Show batch"},
    "audit.op.HandoverService/GetMinutes": {"vi": "Lập biên bản bàn giao", "en": "Write handover minutes"},
    "audit.op.CopyService/Print": {"vi": "In bản sao", "en": "Print copy"},
    "audit.op.CopyService/ListCopies": {"vi": "Xem sổ bản sao", "en": "List copies"},
    "audit.op.IncidentService/ReportIncident": {"vi": "Báo cáo sự cố", "en": "Report incident"},
    "audit.op.IncidentService/CloseIncident": {"vi": "Đóng sự cố", "en": "Close incident"},
    "audit.op.IncidentService/ListIncidents": {"vi": "Xem sự cố", "en": "List incidents"},

    # Batch scanning.
    "batch.need_handed_over_by": {
        "vi": "Chưa có lô bàn giao cho thư mục này. Mở lô bằng --handed-over-by \"HỌ TÊN\" (người giao tài liệu) "
        "hoặc chỉ định lô có sẵn bằng --batch.",
        "en": "There is no handover batch for this folder yet. Open one with --handed-over-by \"NAME\" (the person "
        "handing the documents over) or name an existing batch with --batch.",
    },
    "batch.no_valid_rows": {
        "vi": "Danh mục không có dòng hợp lệ nào để đưa vào lô.",
        "en": "The list has no valid row to put in a batch.",
    },
    "batch.state_unreadable": {
        "vi": "Không đọc được {path}. Hãy xóa tệp này và chỉ định lô bằng --batch.",
        "en": "Cannot read {path}. Remove it and name the batch with --batch.",
    },
    "batch.out_dir_other_batch": {
        "vi": "Thư mục {path} thuộc lô {batch_id}; hãy dùng thư mục khác cho lô khác.",
        "en": "The folder {path} belongs to batch {batch_id}; use another folder for another batch.",
    },
    "batch.opened": {
        "vi": "Đã mở lô bàn giao {batch_id} gồm {count} tài liệu. Lô chờ lãnh đạo cho phép: "
        "niemphong batch approve {batch_id}",
        "en": "Opened handover batch {batch_id} with {count} documents. It waits for permission: "
        "niemphong batch approve {batch_id}",
    },
    "batch.awaiting_approval": {
        "vi": "Lô {batch_id} chưa được cho phép mang tài liệu ra khỏi nơi lưu giữ. Người phê duyệt chạy "
        "niemphong batch approve {batch_id}, sau đó chạy lại lệnh này.",
        "en": "Batch {batch_id} has no permission to take the documents out of storage yet. An approver runs "
        "niemphong batch approve {batch_id}; then run this command again.",
    },
    "batch.already_closed": {
        "vi": "Lô {batch_id} đã đóng; không niêm phong thêm vào lô này được.",
        "en": "Batch {batch_id} is closed; nothing more can be sealed into it.",
    },
    "batch.row_progress": {"vi": "[{done}/{total}] {doc_number}: {message}", "en": "[{done}/{total}] {doc_number}: {message}"},
    "batch.row_sealed": {"vi": "đã niêm phong → {envelope}", "en": "sealed → {envelope}"},
    "batch.row_pages_differ": {
        "vi": "đã niêm phong → {envelope}, nhưng LỆCH SỐ TRANG: danh mục ghi {listed}, bản quét có {counted} "
        "(sẽ được ghi vào biên bản)",
        "en": "sealed → {envelope}, but the PAGE COUNT DIFFERS: the list says {listed}, the scan has {counted} "
        "(recorded in the minutes)",
    },
    "batch.row_already_sealed": {
        "vi": "đã niêm phong ở lần chạy trước ({envelope}); bỏ qua",
        "en": "sealed in an earlier run ({envelope}); skipped",
    },
    "batch.row_not_secret": {
        "vi": "không niêm phong: {explanation} Mã quyết định: {record_id}.",
        "en": "not sealed: {explanation} Decision record: {record_id}.",
    },
    "batch.row_already_not_secret": {
        "vi": "đã được xác định không còn thuộc BMNN ở lần chạy trước (mã quyết định {record_id}); bỏ qua",
        "en": "found no longer secret in an earlier run (decision record {record_id}); skipped",
    },
    "batch.row_confirmed": {
        "vi": "đã niêm phong ở lần chạy trước ({envelope}); phong bì nay đã được xác nhận với niemphongd",
        "en": "sealed in an earlier run ({envelope}); the envelope is now confirmed with niemphongd",
    },
    "batch.row_replaced": {
        "vi": "(lần niêm phong trước, mã {artefact_id}, không có phong bì nên đã được hủy bỏ)",
        "en": "(the earlier seal, artefact {artefact_id}, had no envelope, so it was abandoned)",
    },
    "batch.row_envelope_other": {
        "vi": "{envelope} không phải phong bì của lần niêm phong chưa xác nhận {artefact_id}; hãy chuyển tệp đó "
        "ra khỏi thư mục rồi chạy lại lệnh để niêm phong lại tài liệu",
        "en": "{envelope} is not the envelope of the unconfirmed seal {artefact_id}; move that file out of the "
        "folder and run the command again to seal the document again",
    },
    "batch.row_envelope_missing": {
        "vi": "niemphongd đã niêm phong tài liệu này (mã {artefact_id}) và phong bì đã được xác nhận là đã ghi, "
        "nhưng không có ở {envelope}. Không niêm phong lại; hãy tìm phong bì đó hoặc báo người phê duyệt.",
        "en": "niemphongd sealed this document already (artefact {artefact_id}) and its envelope was confirmed "
        "written, but {envelope} is missing. It is not sealed again; find that envelope or tell an approver.",
    },
    "batch.row_not_in_batch": {
        "vi": "tài liệu không có trong danh sách của lô {batch_id}",
        "en": "the document is not on the list of batch {batch_id}",
    },
    "batch.pages_format": {
        "vi": "{path} không phải tệp PDF, TIFF, JPEG hay PNG nên không đếm được số trang",
        "en": "{path} is not a PDF, TIFF, JPEG or PNG file, so its pages cannot be counted",
    },
    "batch.pages_damaged": {
        "vi": "tệp {path} bị hỏng: không đọc được để đếm số trang",
        "en": "{path} is damaged: it cannot be read to count its pages",
    },
    "batch.report_line": {
        "vi": "STT {number} | {doc_number} | mã thoát {exit_code} | {message}",
        "en": "No. {number} | {doc_number} | exit {exit_code} | {message}",
    },
    "batch.report_total": {
        "vi": "Lô {batch_id}: {sealed} đã niêm phong, {already} đã có từ trước, {not_secret} không còn thuộc BMNN, "
        "{refused} bị từ chối, {failed} lỗi; {differ} tài liệu lệch số trang.",
        "en": "Batch {batch_id}: {sealed} sealed, {already} sealed before, {not_secret} no longer secret, "
        "{refused} refused, {failed} failed; {differ} with a page count that differs.",
    },
    "batch.approved": {
        "vi": "Đã cho phép mang {count} tài liệu của lô {batch_id} ra khỏi nơi lưu giữ.",
        "en": "Permitted the {count} documents of batch {batch_id} to leave storage.",
    },
    "batch.closed": {
        "vi": "Đã đóng lô {batch_id}; {flagged} tài liệu có chênh lệch cần xử lý.",
        "en": "Closed batch {batch_id}; {flagged} documents have differences to resolve.",
    },
    "batch.minutes_written": {
        "vi": "Đã ghi biên bản bàn giao lô {batch_id} vào {out} ({size} byte).",
        "en": "Wrote the handover minutes of batch {batch_id} to {out} ({size} bytes).",
    },
    "batch.show_header": {"vi": "Lô {batch_id}: {state}", "en": "Batch {batch_id}: {state}"},
    "batch.show_line": {
        "vi": "  {number}. {doc_number} ({level}): danh mục {pages} trang, bản quét {scanned}: {outcome}",
        "en": "  {number}. {doc_number} ({level}): list {pages} pages, scan {scanned}: {outcome}",
    },
    "batch.show_total": {
        "vi": "Đối chiếu: giao {out} tài liệu / {pages_out} trang; nhận lại {back} tài liệu / {pages_back} trang; "
        "đã số hóa {sealed} tài liệu / {scanned} trang; {not_secret} tài liệu không còn thuộc BMNN; "
        "{flagged} tài liệu có chênh lệch.",
        "en": "Reconciliation: {out} documents / {pages_out} pages out; {back} documents / {pages_back} pages back; "
        "{sealed} documents / {scanned} pages sealed; {not_secret} documents no longer secret; "
        "{flagged} documents with differences.",
    },
    "batch.state.awaiting_approval": {"vi": "chờ cho phép", "en": "awaiting permission"},
    "batch.state.out": {"vi": "đang số hóa (tài liệu đã ra khỏi kho)", "en": "out for scanning"},
    "batch.state.closed": {"vi": "đã đóng", "en": "closed"},
    "batch.state.unspecified": {"vi": "(không rõ)", "en": "(unknown)"},
    "batch.outcome.sealed": {"vi": "đã số hóa, khớp số trang", "en": "sealed, pages match"},
    "batch.outcome.pages_differ": {"vi": "LỆCH SỐ TRANG", "en": "PAGE COUNT DIFFERS"},
    "batch.outcome.not_sealed": {"vi": "chưa số hóa", "en": "not sealed"},
    "batch.outcome.never_digitized": {"vi": "Tuyệt mật: không số hóa", "en": "Tuyệt mật: never digitized"},
    "batch.outcome.not_secret": {
        "vi": "không còn thuộc BMNN, không niêm phong", "en": "no longer secret, not sealed",
    },
    "batch.outcome.unconfirmed": {
        "vi": "CHƯA SỐ HÓA: đã niêm phong nhưng phong bì chưa được xác nhận là đã ghi",
        "en": "NOT DIGITIZED: sealed, but the envelope is not confirmed written",
    },
    "batch.outcome.unspecified": {"vi": "(không rõ)", "en": "(unknown)"},
    "batch.show_unconfirmed": {
        "vi": "{count} tài liệu đã niêm phong nhưng phong bì chưa được xác nhận là đã ghi, nên chưa tính là đã số "
        "hóa. Chạy lại lệnh quét lô để xác nhận phong bì có trong thư mục ra hoặc niêm phong lại; lô chưa đóng được "
        "cho đến khi đó.",
        "en": "{count} documents are sealed but their envelopes are not confirmed written, so they do not count as "
        "digitized. Run the batch scan again to confirm the envelopes found in the output folder or seal them "
        "again; the batch cannot be closed until then.",
    },

    # Removing sources.
    "hygiene.removed": {
        "vi": "Đã xác nhận phong bì {envelope} mở ra đúng tệp quét và đã xóa tệp quét {source}. "
        "Trên ổ SSD, dữ liệu cũ vẫn có thể còn trong ổ cho tới khi ổ tự xóa.",
        "en": "Confirmed that {envelope} opens to exactly the scan, and removed the scan {source}. "
        "On an SSD the old data may remain on the drive until the drive erases it.",
    },
    "hygiene.verify_mismatch": {
        "vi": "Phong bì {envelope} không mở ra đúng tệp đã niêm phong; tệp quét được giữ nguyên.",
        "en": "The envelope {envelope} does not open to the file that was sealed; the scan was kept.",
    },
    "hygiene.source_changed": {
        "vi": "Tệp {path} đã thay đổi sau khi niêm phong; tệp được giữ nguyên.",
        "en": "{path} changed after it was sealed; it was kept.",
    },
    "hygiene.hard_links": {
        "vi": "Tệp {path} còn {links} tên (liên kết cứng) nên xóa một tên không xóa được dữ liệu; tệp được giữ nguyên.",
        "en": "{path} has {links} names (hard links), so removing one would not remove the data; it was kept.",
    },

    # Access requests with copies or a recipient.
    "approve.awaiting_head": {
        "vi": "Đã ghi nhận phê duyệt cho yêu cầu {request_id}. Yêu cầu cung cấp tài liệu cho {recipient} còn "
        "chờ người đứng đầu cơ quan phê duyệt (Điều 15, 16 Luật Bảo vệ bí mật nhà nước).",
        "en": "Recorded the approval of request {request_id}. Giving the document to {recipient} still needs the "
        "head of the agency's approval (Articles 15 and 16 of the Law on Protection of State Secrets).",
    },
    "approve.copies": {"vi": "Quyền này cho phép in {copies} bản sao.", "en": "The grant allows {copies} printed copies."},
    "show.copies": {"vi": "Bản sao đã in", "en": "Copies printed"},
    "show.suspended": {"vi": "Đang bị tạm dừng do sự cố", "en": "Suspended by an incident"},
    "show.recipient": {"vi": "Cơ quan nhận", "en": "Recipient agency"},
    "show.awaiting_head": {"vi": "Chờ người đứng đầu phê duyệt", "en": "Awaiting the head's approval"},

    # Print and copies.
    "print.done": {
        "vi": "Đã in bản sao số {copy_number} ({pages} trang) vào {out}; người cho phép sao: {authorized}. "
        "Còn {remaining} lượt in.",
        "en": "Printed copy number {copy_number} ({pages} pages) to {out}; copying authorized by {authorized}. "
        "{remaining} copies left.",
    },
    "print.reminder": {
        "vi": "Bản sao phải có chữ ký của người có thẩm quyền cho phép sao (Điều 11 Luật Bảo vệ bí mật nhà nước) "
        "và được quản lý như tài liệu gốc; xóa tệp PDF sau khi in.",
        "en": "The copy needs the signature of the person who may authorize copies (Article 11 of the Law on "
        "Protection of State Secrets) and is protected like the original; delete the PDF after printing.",
    },
    "copies.empty": {"vi": "Chưa có bản sao nào.", "en": "No copies yet."},
    "copies.line": {
        "vi": "Bản sao số {copy_number}: {state}, in bởi {printed_by} lúc {time}, người cho phép {authorized_by}",
        "en": "Copy {copy_number}: {state}, printed by {printed_by} at {time}, authorized by {authorized_by}",
    },
    "copies.state.issued": {"vi": "đã phát hành", "en": "issued"},
    "copies.state.spoiled": {"vi": "hỏng (không dùng lại số)", "en": "spoiled (number not reused)"},
    "copies.state.printing": {"vi": "đang in", "en": "printing"},

    # Incidents.
    "incident.empty_text": {"vi": "Mô tả sự cố (--text) không được để trống.", "en": "The incident text (--text) must not be empty."},
    "incident.empty_resolution": {
        "vi": "Kết quả xử lý (--resolution) không được để trống.",
        "en": "The resolution (--resolution) must not be empty.",
    },
    "incident.reported": {
        "vi": "Đã báo cáo sự cố {incident_id} về {count} tài liệu; {grants} quyền khai thác bị tạm dừng ngay. "
        "Hãy báo ngay cho người đứng đầu cơ quan.",
        "en": "Reported incident {incident_id} on {count} documents; {grants} grants are suspended at once. "
        "Tell the head of the agency now.",
    },
    "incident.closed_lifted": {
        "vi": "Đã đóng sự cố {incident_id}; các quyền khai thác còn hạn được dùng lại.",
        "en": "Closed incident {incident_id}; unexpired grants may be used again.",
    },
    "incident.closed_revoked": {
        "vi": "Đã đóng sự cố {incident_id}; các quyền khai thác tài liệu liên quan đã bị thu hồi.",
        "en": "Closed incident {incident_id}; the grants on its documents are revoked.",
    },
    "incident.none": {"vi": "Không có sự cố nào.", "en": "No incidents."},
    "incident.line": {
        "vi": "{incident_id} | {state} | {reported_by} lúc {time} | {count} tài liệu | {text}",
        "en": "{incident_id} | {state} | {reported_by} at {time} | {count} documents | {text}",
    },
    "incident.state.open": {"vi": "đang mở", "en": "open"},
    "incident.state.closed": {"vi": "đã đóng", "en": "closed"},

    # Errors from niemphongd, by ErrorInfo reason.
    "reason.BATCH_NOT_FOUND": {
        "vi": "Không tìm thấy lô bàn giao này. Kiểm tra mã lô.",
        "en": "Handover batch not found. Check the batch id.",
    },
    "reason.BATCH_NOT_APPROVED": {
        "vi": "Lô bàn giao chưa được cho phép mang tài liệu ra khỏi nơi lưu giữ; người phê duyệt chạy "
        "niemphong batch approve MÃ_LÔ trước.",
        "en": "The batch has no permission to take its documents out of storage; an approver runs "
        "niemphong batch approve BATCH_ID first.",
    },
    "reason.BATCH_STATE_CONFLICT": {
        "vi": "Lô bàn giao không ở trạng thái cho phép thao tác này (đã được cho phép hoặc đã đóng). "
        "Xem bằng niemphong batch show MÃ_LÔ.",
        "en": "The batch is not in a state that allows this (already permitted or closed). "
        "See it with niemphong batch show BATCH_ID.",
    },
    "reason.NOT_IN_BATCH": {
        "vi": "Tài liệu không có trong danh sách của lô, hoặc độ mật hay ngày ban hành khác với danh sách.",
        "en": "The document is not on the batch's list, or its level or issue date differs from the list.",
    },
    "reason.BATCH_UNCONFIRMED": {
        "vi": "Lô còn {count} tài liệu đã niêm phong nhưng phong bì chưa được xác nhận là đã ghi ({doc_numbers}), "
        "nên chưa đóng lô. Chạy lại lệnh quét lô với cùng thư mục ra: phong bì tìm thấy sẽ được xác nhận, tài "
        "liệu thiếu phong bì sẽ được niêm phong lại.",
        "en": "The batch still has {count} documents sealed without a confirmed envelope ({doc_numbers}), so it "
        "is not closed. Run the batch scan again with the same output folder: envelopes found there are "
        "confirmed, and documents without one are sealed again.",
    },
    "reason.ARTEFACT_ABANDONED": {
        "vi": "Lần niêm phong {artefact_id} đã bị hủy bỏ vì phong bì của nó không được giữ lại; không mở, in hay "
        "cấp quyền cho phong bì này. Hãy dùng phong bì của lần niêm phong đang có hiệu lực.",
        "en": "Seal {artefact_id} was abandoned because its envelope was never kept; this envelope is not opened, "
        "printed or granted. Use the envelope of the seal in force.",
    },
    "reason.SEAL_CONFIRMED": {
        "vi": "Phong bì của lần niêm phong {artefact_id} đã được xác nhận là đã ghi; không hủy bỏ được.",
        "en": "The envelope of seal {artefact_id} was confirmed written; it cannot be abandoned.",
    },
    "reason.ENVELOPE_MISMATCH": {
        "vi": "Phong bì đã ghi của lần niêm phong {artefact_id} khác với phong bì niemphongd đã niêm phong (SHA-256 "
        "không khớp); phong bì này không được xác nhận.",
        "en": "The envelope written for seal {artefact_id} differs from the one niemphongd sealed (SHA-256 "
        "mismatch); it is not confirmed.",
    },
    "reason.ALREADY_SEALED": {
        "vi": "Tài liệu này đã được niêm phong trong lô; không niêm phong lần thứ hai.",
        "en": "This document was already sealed in the batch; it is not sealed twice.",
    },
    "reason.NOT_YOUR_ARTEFACT": {
        "vi": "Chỉ người đã niêm phong tài liệu mới kiểm tra được phong bì của tài liệu đó.",
        "en": "Only the scanner who sealed a document may verify its envelope.",
    },
    "reason.PRINTING_NOT_ALLOWED": {
        "vi": "Chính sách của độ mật này không cho phép in bản sao.",
        "en": "The policy of this level does not allow printed copies.",
    },
    "reason.NOT_APPROVED_FOR_PRINTING": {
        "vi": "Bạn chưa được phép in tài liệu này: không có yêu cầu nào của bạn đã được phê duyệt, còn hạn và "
        "còn lượt in. Gửi yêu cầu bằng niemphong request PHONG_BÌ --purpose \"...\" --copies N.",
        "en": "You may not print this document: none of your requests for it is approved, unexpired and with "
        "copies left. Ask with niemphong request ENVELOPE --purpose \"...\" --copies N.",
    },
    "reason.UNPRINTABLE_DOCUMENT": {
        "vi": "Không in được tài liệu này: nội dung không phải PDF, TIFF, JPEG hay PNG đọc được, hoặc quá lớn.",
        "en": "This document cannot be printed: it is not a readable PDF, TIFF, JPEG or PNG, or it is too large.",
    },
    "reason.RENDERER_UNAVAILABLE": {
        "vi": "niemphongd chưa có phông chữ để tạo PDF (gói fonts-dejavu-core). Hãy báo người vận hành.",
        "en": "niemphongd lacks the font it needs to make PDFs (package fonts-dejavu-core). Tell the operator.",
    },
    "reason.SUSPENDED_BY_INCIDENT": {
        "vi": "Quyền khai thác tài liệu này đang bị tạm dừng vì có sự cố lộ, mất bí mật nhà nước chưa được xử lý.",
        "en": "Access to this document is suspended while an incident of loss or exposure is open.",
    },
    "reason.INCIDENT_NOT_FOUND": {
        "vi": "Không tìm thấy sự cố này. Xem danh sách bằng niemphong incident list.",
        "en": "Incident not found. See the list with niemphong incident list.",
    },
    "reason.INCIDENT_CLOSED": {"vi": "Sự cố này đã được đóng.", "en": "This incident is already closed."},

    # Field names used inside messages.
    "field.copies": {"vi": "số bản sao (--copies)", "en": "copies (--copies)"},
    "field.recipient": {"vi": "cơ quan nhận (--recipient)", "en": "recipient (--recipient)"},
    "field.handed_over_by": {"vi": "người giao (--handed-over-by)", "en": "handed over by (--handed-over-by)"},
    "field.note": {"vi": "ghi chú (--note)", "en": "note (--note)"},
    "field.text": {"vi": "mô tả sự cố (--text)", "en": "incident text (--text)"},
    "field.resolution": {"vi": "kết quả xử lý (--resolution)", "en": "resolution (--resolution)"},
    "field.batch_id": {"vi": "mã lô", "en": "batch id"},
    "field.documents": {"vi": "danh sách tài liệu của lô", "en": "the batch's document list"},
}
