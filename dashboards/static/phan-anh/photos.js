// Photos chosen or taken on the phone, with previews, checked before upload: a 12 MB photo on a
// slow mountain connection should be refused here in a second, not by the server after a minute.
// The server checks every photo again by its content (ioc/reports/media.py); these limits mirror it.
// Used by the citizen page and the commune console.

import { addStrings, t } from "/common/i18n.js";

export const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
const TYPES = /^image\/(jpeg|png|webp)$/;

addStrings({
  vi: {
    "photos.remove": "Bỏ ảnh {name}",
    "photos.too_many": "Chỉ gửi được tối đa {max} ảnh; đã bỏ bớt.",
    "photos.too_big": "Ảnh {name} quá lớn ({size} MB; tối đa 10 MB).",
    "photos.not_image": "Tệp {name} không phải ảnh JPEG, PNG hoặc WebP.",
  },
  en: {
    "photos.remove": "Remove photo {name}",
    "photos.too_many": "At most {max} photos can be sent; the rest were left out.",
    "photos.too_big": "Photo {name} is too large ({size} MB; at most 10 MB).",
    "photos.not_image": "File {name} is not a JPEG, PNG or WebP photo.",
  },
});

export class PhotoPicker {
  /** `input`: the file input; `list`: a <ul> for previews; `error`: where refusals are said. */
  constructor({ input, list, error, max = 5 }) {
    this.input = input;
    this.list = list;
    this.error = error;
    this.max = max;
    this.items = []; // {file, url}
    this.problems = []; // [key, params]
    input.addEventListener("change", () => {
      this.add([...input.files]);
      input.value = ""; // the same photo can be chosen again after removing it
    });
  }

  add(files) {
    this.problems = [];
    for (const file of files) {
      const name = file.name || "ảnh";
      if (!TYPES.test(file.type)) this.problems.push(["photos.not_image", { name }]);
      else if (file.size > MAX_PHOTO_BYTES) {
        this.problems.push(["photos.too_big", { name, size: (file.size / 1048576).toFixed(1) }]);
      } else if (this.items.length >= this.max) {
        this.problems.push(["photos.too_many", { max: this.max }]);
        break;
      } else this.items.push({ file, url: URL.createObjectURL(file) });
    }
    this.render();
  }

  remove(index) {
    const [item] = this.items.splice(index, 1);
    if (item) URL.revokeObjectURL(item.url);
    this.problems = [];
    this.render();
  }

  clear() {
    for (const item of this.items) URL.revokeObjectURL(item.url);
    this.items = [];
    this.problems = [];
    this.render();
  }

  files() {
    return this.items.map((x) => x.file);
  }

  render() {
    this.error.textContent = this.problems.map(([key, params]) => t(key, params)).join(" ");
    this.list.replaceChildren(
      ...this.items.map((item, index) => {
        const li = document.createElement("li");
        const img = document.createElement("img");
        img.src = item.url;
        img.alt = item.file.name;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "remove";
        button.textContent = "×";
        button.setAttribute("aria-label", t("photos.remove", { name: item.file.name }));
        button.addEventListener("click", () => this.remove(index));
        li.append(img, button);
        return li;
      }),
    );
  }
}
